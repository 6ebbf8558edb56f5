# module_graph_planted.cmake - proves cmake/check_modules.cmake refuses what
# it must: the real tree passes, then a copy of it with each defect planted
# fails with the expected line. ctest runs it as module_graph_planted:
#
#   cmake -DCHECKER=<check_modules.cmake> -DREAL_SRC=<src> -DREAL_DEPS=<module_deps.cmake>
#         -DWORK=<scratch dir> -P module_graph_planted.cmake
cmake_minimum_required(VERSION 3.18)

function(run_check src deps out_rc out_text)
  execute_process(COMMAND ${CMAKE_COMMAND} -DSRC_DIR=${src} -DDEPS_FILE=${deps} -P ${CHECKER}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE o ERROR_VARIABLE e)
  set(${out_rc} ${rc} PARENT_SCOPE)
  set(${out_text} "${o}${e}" PARENT_SCOPE)
endfunction()

function(expect_refused what src deps pattern)
  run_check(${src} ${deps} rc text)
  if(rc EQUAL 0)
    message(FATAL_ERROR "${what}: the check passed; it must fail")
  endif()
  if(NOT text MATCHES "${pattern}")
    message(FATAL_ERROR "${what}: failed without the line '${pattern}':\n${text}")
  endif()
  message(STATUS "${what}: refused as expected")
endfunction()

# A fresh copy of the real tree in WORK/src.
function(fresh_copy)
  file(REMOVE_RECURSE ${WORK})
  file(MAKE_DIRECTORY ${WORK})
  file(COPY ${REAL_SRC}/ DESTINATION ${WORK}/src)
endfunction()

function(prepend_line path line)
  file(READ ${path} text)
  file(WRITE ${path} "${line}\n${text}")
endfunction()

# 0. The real tree passes (so every refusal below comes from its plant).
run_check(${REAL_SRC} ${REAL_DEPS} rc text)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "the real tree fails the check:\n${text}")
endif()
fresh_copy()
run_check(${WORK}/src ${REAL_DEPS} rc text)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "the unmodified copy fails the check:\n${text}")
endif()

# 1. The ctl <-> server cycle planted back: server.c includes ctl/ctl.h.
prepend_line(${WORK}/src/server/server.c "#include \"ctl/ctl.h\"")
expect_refused("planted cycle (server includes ctl)" ${WORK}/src ${REAL_DEPS}
               "src/server/server.c: includes \"ctl/ctl.h\" but server does not depend on ctl")

# 2. ... and declaring that edge (ag_server linking ag_ctl) is a declared cycle.
file(READ ${REAL_DEPS} deps)
file(WRITE ${WORK}/cycle_deps.cmake "${deps}list(APPEND AG_DEPS_server ctl)\n")
expect_refused("declared cycle (ag_server links ag_ctl)" ${WORK}/src ${WORK}/cycle_deps.cmake
               "cycle among: server ctl")

# 3. A longer cycle, declared through three modules: auth -> rules -> ... -> auth.
file(WRITE ${WORK}/cycle3_deps.cmake "${deps}list(APPEND AG_DEPS_auth rules)\n")
expect_refused("declared cycle (auth links rules)" ${WORK}/src ${WORK}/cycle3_deps.cmake
               "cycle among: auth rules")

# 4. ctl reaching into the private server/conn.h again (declared dependency or not).
fresh_copy()
prepend_line(${WORK}/src/ctl/commands.c "#include \"server/conn.h\"")
expect_refused("private header (ctl includes server/conn.h)" ${WORK}/src ${REAL_DEPS}
               "src/ctl/commands.c: includes \"server/conn.h\", private to src/server")

# 5. A new folder without its library.
fresh_copy()
file(WRITE ${WORK}/src/extra/extra.c "#include \"util/util.h\"\n")
expect_refused("folder without a library" ${WORK}/src ${REAL_DEPS} "src/extra/ has no library")

file(REMOVE_RECURSE ${WORK})
