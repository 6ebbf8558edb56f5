# check_modules.cmake - the include graph of src/ against the module graph
# CMakeLists.txt declares. Run on every build (target check_modules, before
# anything compiles) and by ctest (module_graph):
#
#   cmake -DSRC_DIR=<src> -DDEPS_FILE=<build>/module_deps.cmake -P check_modules.cmake
#
# A module is a folder of src/ (library ag_<folder>); files directly in src/
# belong to module "main" (the authgate program). DEPS_FILE sets AG_MODULES
# and, per module, AG_DEPS_<module>: the modules its target links, PUBLIC or
# PRIVATE. Exits 1 with one "error: module graph:" line per finding when
#  - a folder of src/ is not a module (a new folder needs its own library),
#  - a file includes "<dir>/..." of another module its module does not
#    declare: an undeclared edge, which is how a cycle starts,
#  - a file includes a header private to another folder (one whose first
#    lines say "(private to src/<dir>)"),
#  - the declared graph has a cycle.
# An include without a folder ("conn.h") is the including file's own folder;
# folders outside src/ ("authgate/..." is include/) are public to every module.

cmake_minimum_required(VERSION 3.18)
if(NOT SRC_DIR OR NOT DEPS_FILE)
  message(FATAL_ERROR "usage: cmake -DSRC_DIR=<src> -DDEPS_FILE=<file> -P check_modules.cmake")
endif()
include(${DEPS_FILE})
set(problems "")

# Every folder is a module.
file(GLOB entries LIST_DIRECTORIES true RELATIVE ${SRC_DIR} ${SRC_DIR}/*)
set(folders "")
foreach(e IN LISTS entries)
  if(IS_DIRECTORY ${SRC_DIR}/${e})
    list(APPEND folders ${e})
    if(NOT e IN_LIST AG_MODULES)
      list(APPEND problems
           "src/${e}/ has no library: add it to AG_MODULES in CMakeLists.txt with its dependencies")
    endif()
  endif()
endforeach()

# Private headers say so in their first comment.
file(GLOB_RECURSE headers RELATIVE ${SRC_DIR} ${SRC_DIR}/*.h)
foreach(h IN LISTS headers)
  file(STRINGS ${SRC_DIR}/${h} mark LIMIT_INPUT 512 REGEX "\\(private to src/[a-z0-9_]+\\)")
  if(mark MATCHES "\\(private to src/([a-z0-9_]+)\\)")
    set(owner_${h} ${CMAKE_MATCH_1})
  endif()
endforeach()

# Every quoted include with a folder is an edge of the including module.
file(GLOB_RECURSE files RELATIVE ${SRC_DIR} ${SRC_DIR}/*.c ${SRC_DIR}/*.h)
list(SORT files)
foreach(f IN LISTS files)
  if(f MATCHES "^([^/]+)/")
    set(mod ${CMAKE_MATCH_1})
  else()
    set(mod main)
  endif()
  file(STRINGS ${SRC_DIR}/${f} lines REGEX "^[ \t]*#[ \t]*include[ \t]*\"[^\"]+\"")
  foreach(line IN LISTS lines)
    string(REGEX REPLACE "^[ \t]*#[ \t]*include[ \t]*\"([^\"]+)\".*$" "\\1" inc "${line}")
    if(NOT inc MATCHES "^([^/]+)/")
      continue()
    endif()
    set(dir ${CMAKE_MATCH_1})
    if(NOT dir IN_LIST folders)
      continue()
    endif()
    if(DEFINED owner_${inc} AND NOT "${owner_${inc}}" STREQUAL "${mod}")
      string(CONCAT msg "src/${f}: includes \"${inc}\", private to src/${owner_${inc}}: "
                    "use that folder's public header")
      list(APPEND problems "${msg}")
    elseif(NOT dir STREQUAL mod AND NOT dir IN_LIST AG_DEPS_${mod})
      string(CONCAT msg "src/${f}: includes \"${inc}\" but ${mod} does not depend on ${dir}: "
                    "declare it in target_link_libraries, unless that closes a cycle")
      list(APPEND problems "${msg}")
    endif()
  endforeach()
endforeach()

# The declared graph has no cycle: peel off modules that depend on nothing
# left, then modules nothing left depends on; what remains is on a cycle
# (or between two).
set(left ${AG_MODULES})
foreach(direction out in)
  while(TRUE)
    set(keep "")
    foreach(m IN LISTS left)
      set(held FALSE)
      foreach(o IN LISTS left)
        if(NOT o STREQUAL m)
          if(direction STREQUAL "out" AND o IN_LIST AG_DEPS_${m})
            set(held TRUE)
          elseif(direction STREQUAL "in" AND m IN_LIST AG_DEPS_${o})
            set(held TRUE)
          endif()
        endif()
      endforeach()
      if(held)
        list(APPEND keep ${m})
      endif()
    endforeach()
    list(LENGTH keep nk)
    list(LENGTH left nl)
    set(left ${keep})
    if(nk EQUAL nl)
      break()
    endif()
  endwhile()
endforeach()
if(left)
  string(REPLACE ";" " " names "${left}")
  list(APPEND problems "the declared dependencies have a cycle among: ${names}")
endif()

list(LENGTH problems n)
if(n GREATER 0)
  foreach(p IN LISTS problems)
    message("error: module graph: ${p}")
  endforeach()
  message(FATAL_ERROR "module graph: ${n} problem(s) (see cmake/check_modules.cmake)")
endif()
