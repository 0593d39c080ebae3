# `cpack -G DEB` from a build directory: the Debian package m2p-engine (docs/operations.md,
# "Debian package"; tests/integration/debian_package.py).
#
# The package installs under /usr like any Debian package, so the prefix-relative layout of
# `cmake --install` holds for bin/ and share/ (the engine finds /usr/share/m2p-engine beside
# /usr/bin/m2p-engine). Two things differ from an install into a prefix and live in the
# component `deb`, which `cmake --install` leaves out (EXCLUDE_FROM_ALL): the settings file
# in /etc/m2p-engine/ (a conffile, not /usr/etc) and the systemd unit in /lib/systemd/system
# with the packaged paths. The prefix-relative etc/m2p-engine/ copy is the component
# `prefix-config`, which the package leaves out.

set(M2P_DEB_PREFIX /usr)
set(M2P_DEB_UNIT ${CMAKE_BINARY_DIR}/debian/m2p-engine.service)

# The example unit with the package's paths; its header (manual install steps for
# /usr/local) replaced by what applies to the package. Regenerated when the example changes.
function(m2p_packaged_unit source target)
  file(READ ${source} text)
  string(FIND "${text}" "[Unit]" unit_start)
  if(unit_start LESS 0)
    message(FATAL_ERROR "${source}: no [Unit] section")
  endif()
  string(SUBSTRING "${text}" ${unit_start} -1 text)
  string(REPLACE "/usr/local/" "${M2P_DEB_PREFIX}/" text "${text}")
  if(NOT text MATCHES "\nExecStart=${M2P_DEB_PREFIX}/bin/m2p-engine ")
    message(FATAL_ERROR "${source}: ExecStart is not /usr/local/bin/m2p-engine: the "
                        "packaged unit would not start the packaged binary")
  endif()
  file(WRITE ${target}
       "# m2p-engine, installed by its Debian package (docs/operations.md, \"Debian package\").\n"
       "# Set DATABASE_URL in /etc/m2p-engine/m2p-engine.env, run m2p-engine --migrate\n"
       "# --env-file /etc/m2p-engine/m2p-engine.env, then: systemctl enable --now m2p-engine\n"
       "# `systemctl reload m2p-engine` re-reads the settings file and the scripts (SIGHUP).\n"
       "${text}")
endfunction()
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS
             ${CMAKE_SOURCE_DIR}/examples/m2p-engine.service)
m2p_packaged_unit(${CMAKE_SOURCE_DIR}/examples/m2p-engine.service ${M2P_DEB_UNIT})

install(FILES examples/.env.example DESTINATION /etc/m2p-engine RENAME m2p-engine.env
        COMPONENT deb EXCLUDE_FROM_ALL)
install(FILES ${M2P_DEB_UNIT} DESTINATION /lib/systemd/system COMPONENT deb EXCLUDE_FROM_ALL)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME m2p-engine)
set(CPACK_PACKAGE_VENDOR "m2p-engine")
set(CPACK_PACKAGE_CONTACT "m2p-engine maintainers <m2p-engine@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "Mine-to-Play pool polling and rewards engine")
# The control file's first line is the summary above; this is the long description.
string(CONCAT CPACK_DEBIAN_PACKAGE_DESCRIPTION
       "Watches players' wallets on mining pools, converts payouts to ADVC and awards\n"
       "Adventure Points in PostgreSQL exactly once, notifying the game through\n"
       "Socket.IO, webhooks or PostgreSQL NOTIFY. Pool scripts and reward rules are Lua.")
set(CPACK_PACKAGING_INSTALL_PREFIX ${M2P_DEB_PREFIX})
# Debian ships stripped binaries (debug symbols would be a -dbgsym package).
set(CPACK_STRIP_FILES ON)
# One package holding the default component and `deb`, without `prefix-config`.
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_GROUPING ALL_COMPONENTS_IN_ONE)
set(CPACK_COMPONENTS_ALL Unspecified deb)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# The runtime libraries come from dpkg-shlibdeps (dpkg-dev) on the binary; adduser is for
# postinst's system user.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "postgresql")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${CMAKE_SOURCE_DIR}/cmake/debian/conffiles ${CMAKE_SOURCE_DIR}/cmake/debian/postinst
    ${CMAKE_SOURCE_DIR}/cmake/debian/prerm ${CMAKE_SOURCE_DIR}/cmake/debian/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
# cpack's staging area and the .deb go here unless `cpack -B DIR` says otherwise.
set(CPACK_PACKAGE_DIRECTORY ${CMAKE_BINARY_DIR}/package)
include(CPack)
