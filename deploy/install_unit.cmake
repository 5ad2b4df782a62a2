# Runs at install time (install(SCRIPT)): CMAKE_INSTALL_PREFIX is then the prefix actually installed to,
# including `cmake --install --prefix`, which configure-time paths would miss.
set(prefix "${CMAKE_INSTALL_PREFIX}")
# GNU convention, as GNUInstallDirs: the /usr prefix keeps its configuration in /etc.
if(prefix STREQUAL "/usr")
  set(sysconfdir "/etc")
else()
  set(sysconfdir "${prefix}/etc")
endif()

file(READ "${SMD_DEPLOY_DIR}/systemd/sockmapd.service" unit)
string(REPLACE "/usr/sbin/" "${prefix}/${SMD_SBINDIR}/" unit "${unit}")
string(REPLACE "/etc/sockmapd/" "${sysconfdir}/sockmapd/" unit "${unit}")
string(REPLACE "/usr/share/doc/sockmapd/" "${prefix}/${SMD_DOCDIR}/" unit "${unit}")
# One staging file per prefix, so that installs to different prefixes at once (tests) cannot mix them up.
string(MD5 prefix_tag "$ENV{DESTDIR}${prefix}")
set(staged "${SMD_WORK_DIR}/sockmapd.service.${prefix_tag}")
file(WRITE "${staged}" "${unit}")
# file(INSTALL) adds DESTDIR, prints "Installing:" and records the file in install_manifest.txt.
file(INSTALL DESTINATION "${prefix}/lib/systemd/system" TYPE FILE FILES "${staged}" RENAME sockmapd.service)
file(REMOVE "${staged}")

# The settings file is the operator's once installed: an upgrade must not overwrite it.
if(EXISTS "$ENV{DESTDIR}${sysconfdir}/sockmapd/sockmapd.env")
  message(STATUS "Keeping: $ENV{DESTDIR}${sysconfdir}/sockmapd/sockmapd.env (the new example is in "
                 "${prefix}/${SMD_DOCDIR}/examples)")
else()
  file(INSTALL DESTINATION "${sysconfdir}/sockmapd" TYPE FILE PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ
       WORLD_READ FILES "${SMD_DEPLOY_DIR}/systemd/sockmapd.env")
endif()
