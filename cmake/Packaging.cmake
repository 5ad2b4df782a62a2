# `make package` (cpack -G DEB): a Debian package of exactly what `cmake --install --prefix /usr` installs.
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME sockmapd)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "sockmapd developers")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "eBPF sockmap acceleration of TCP connections between local sockets")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_STRIP_FILES ON)
# Depends: from the libraries the binaries link (dpkg-shlibdeps), as the Dockerfile's runtime stage lists them.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# dpkg keeps an edited /etc/sockmapd/sockmapd.env on upgrade, as cmake --install does.
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${PROJECT_SOURCE_DIR}/deploy/debian/conffiles)
# No maintainer scripts: the operator enables and restarts the service (docs/install.md).
include(CPack)
