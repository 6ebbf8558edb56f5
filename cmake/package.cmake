# package.cmake - man pages, install layout and the Debian package (CPack).
#
# Included from CMakeLists.txt. The man pages are built with every build:
# authgate.conf(5) carries the option reference that scripts/man/gen-conf-man
# writes from the option table (src/config/config.c), so the page cannot
# drift from the options the daemon parses. scripts/package configures a
# build with -DCMAKE_INSTALL_PREFIX=/usr and runs `cpack -G DEB`; the layout
# below is Debian's (binaries in /usr/sbin, the unit in /lib/systemd/system).

set(AG_MAN_DIR ${PROJECT_BINARY_DIR}/man)
file(MAKE_DIRECTORY ${AG_MAN_DIR})
set(VERSION ${PROJECT_VERSION})
configure_file(${PROJECT_SOURCE_DIR}/scripts/man/authgate.8.in ${AG_MAN_DIR}/authgate.8 @ONLY)
configure_file(${PROJECT_SOURCE_DIR}/scripts/man/authgatectl.8.in ${AG_MAN_DIR}/authgatectl.8
               @ONLY)

add_executable(gen-conf-man scripts/man/gen-conf-man.c)
target_compile_options(gen-conf-man PRIVATE ${AG_WARNINGS})
target_link_libraries(gen-conf-man PRIVATE ag_config)
add_custom_command(
  OUTPUT ${AG_MAN_DIR}/authgate.conf.5
  COMMAND gen-conf-man ${PROJECT_SOURCE_DIR}/scripts/man/authgate.conf.5.in
          ${AG_MAN_DIR}/authgate.conf.5
  DEPENDS gen-conf-man ${PROJECT_SOURCE_DIR}/scripts/man/authgate.conf.5.in
  COMMENT "Generating authgate.conf(5) from the option table"
  VERBATIM)
add_custom_target(man ALL DEPENDS ${AG_MAN_DIR}/authgate.conf.5)

# Debian wants man pages compressed with gzip -9n (no name, no time stamp),
# so the package is reproducible.
find_program(GZIP gzip REQUIRED)
set(AG_MAN_GZ "")
foreach(page authgate.8 authgatectl.8 authgate.conf.5)
  add_custom_command(
    OUTPUT ${AG_MAN_DIR}/${page}.gz
    COMMAND ${GZIP} -9nf -k ${AG_MAN_DIR}/${page}
    DEPENDS ${AG_MAN_DIR}/${page}
    VERBATIM)
  list(APPEND AG_MAN_GZ ${AG_MAN_DIR}/${page}.gz)
endforeach()
add_custom_target(man_gz ALL DEPENDS ${AG_MAN_GZ})

# ---- install layout -------------------------------------------------------
set(AG_DEB_DIR ${PROJECT_SOURCE_DIR}/scripts/deb)
set(AG_PKG_DIR ${PROJECT_BINARY_DIR}/pkg)
file(MAKE_DIRECTORY ${AG_PKG_DIR})
install(TARGETS authgate authgatectl RUNTIME DESTINATION sbin)
install(FILES ${AG_MAN_DIR}/authgate.8.gz ${AG_MAN_DIR}/authgatectl.8.gz
        DESTINATION share/man/man8)
install(FILES ${AG_MAN_DIR}/authgate.conf.5.gz DESTINATION share/man/man5)
install(FILES ${PROJECT_SOURCE_DIR}/scripts/authgate.service DESTINATION /lib/systemd/system)
install(FILES ${PROJECT_SOURCE_DIR}/scripts/authgate.logrotate DESTINATION /etc/logrotate.d
        RENAME authgate)
# The sample, with the paths a packaged daemon uses (the sample itself
# points at the source tree's demo user file and logs to the terminal).
file(READ ${PROJECT_SOURCE_DIR}/proxy.conf.sample AG_SAMPLE)
string(REPLACE "\nuser_file scripts/demo-users\n" "\nuser_file /etc/authgate/users\n" AG_SAMPLE
               "${AG_SAMPLE}")
string(REPLACE "\naccess_log -\n" "\naccess_log /var/log/authgate/access.log\n" AG_SAMPLE
               "${AG_SAMPLE}")
string(REPLACE "\n# rcache_dir none\n" "\nrcache_dir /var/lib/authgate\n" AG_SAMPLE "${AG_SAMPLE}")
string(REPLACE "\n# status_socket none\n" "\nstatus_socket /run/authgate/authgate.sock\n"
               AG_SAMPLE "${AG_SAMPLE}")
string(REPLACE "# This sample runs as shipped from the source tree" "# This file runs as installed"
               AG_SAMPLE "${AG_SAMPLE}")
file(WRITE ${AG_PKG_DIR}/authgate.conf "${AG_SAMPLE}")
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS
             ${PROJECT_SOURCE_DIR}/proxy.conf.sample)
install(FILES ${AG_PKG_DIR}/authgate.conf DESTINATION /etc/authgate
        PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
configure_file(${AG_DEB_DIR}/changelog.in ${AG_PKG_DIR}/changelog @ONLY)
add_custom_command(
  OUTPUT ${AG_PKG_DIR}/changelog.gz
  COMMAND ${GZIP} -9nf -k ${AG_PKG_DIR}/changelog
  DEPENDS ${AG_PKG_DIR}/changelog
  VERBATIM)
add_custom_target(changelog_gz ALL DEPENDS ${AG_PKG_DIR}/changelog.gz)
install(FILES ${AG_DEB_DIR}/copyright ${AG_PKG_DIR}/changelog.gz ${PROJECT_SOURCE_DIR}/README.md
        DESTINATION share/doc/authgate)
install(FILES ${PROJECT_SOURCE_DIR}/scripts/grafana-authgate.json
              ${PROJECT_SOURCE_DIR}/scripts/authgate-alerts.yml
        DESTINATION share/doc/authgate/examples OPTIONAL)

# ---- the Debian package ---------------------------------------------------
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME authgate)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "authgate maintainers <authgate@example.org>")
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${CPACK_PACKAGE_CONTACT}")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "authenticating HTTP forward proxy (NTLM, Kerberos, Basic)")
# CPack writes the summary as the synopsis line and this as the long
# description, indenting each line.
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION
    "authgate is an HTTP/1.1 forward proxy for Windows-domain networks that lets
a client through only after it authenticates with 407 Proxy Authentication
Required: NTLM and Basic through Samba winbind or a local NT-hash file, and
Kerberos single sign-on (Negotiate) through GSS-API. Access rules decide who
may go where; authgatectl and a Prometheus listener show what it does.")
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE "https://example.org/authgate")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT) # authgate_<version>_<arch>.deb
# dpkg-shlibdeps derives the library packages from the binaries (libuv1,
# libgssapi-krb5-2, libkrb5-3, libwbclient0, libnettle8, libsystemd0, libc6);
# the maintainer scripts need adduser.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "winbind, krb5-user, logrotate, prometheus")
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${AG_DEB_DIR}/conffiles ${AG_DEB_DIR}/postinst
                                        ${AG_DEB_DIR}/postrm ${AG_DEB_DIR}/prerm)
set(CPACK_PACKAGING_INSTALL_PREFIX ${CMAKE_INSTALL_PREFIX})
include(CPack)
