# Installation: the headers, the static libraries, a CMake package (find_package(grove CONFIG),
# targets grove::core, grove::dist, grove::observe, grove::config, grove::app and grove::grove) and a pkg-config file
# (grove.pc, everything). Included from the top CMakeLists.txt
# after the targets exist; the `grove` binary is installed where it is defined (apps/).
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(GROVE_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/grove CACHE STRING
    "Where the CMake package files are installed, relative to the prefix")

install(TARGETS grove_core grove_dist grove_observe grove_config grove_app grove EXPORT grove_targets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/framework/include/grove
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
  FILES_MATCHING PATTERN "*.hpp")

# The libraries are static: their private dependencies (spdlog, yaml-cpp, ...) are part of its link
# interface, so groveConfig.cmake finds them before it includes the targets.
install(EXPORT grove_targets
  FILE groveTargets.cmake
  NAMESPACE grove::
  DESTINATION ${GROVE_INSTALL_CMAKEDIR})
configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/groveConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/groveConfig.cmake
  INSTALL_DESTINATION ${GROVE_INSTALL_CMAKEDIR})
# 0.x: a minor version may break the API.
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/groveConfigVersion.cmake
  VERSION ${PROJECT_VERSION}
  COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/groveConfig.cmake ${CMAKE_CURRENT_BINARY_DIR}/groveConfigVersion.cmake
  DESTINATION ${GROVE_INSTALL_CMAKEDIR})

# pkg-config: paths relative to the .pc file, so `cmake --install --prefix P` (and DESTDIR)
# yield a working file wherever P is.
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
  set(GROVE_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
  set(GROVE_PC_LIBDIR "${CMAKE_INSTALL_LIBDIR}")
else()
  file(RELATIVE_PATH grove_pc_up /x/${CMAKE_INSTALL_LIBDIR}/pkgconfig /x)
  string(REGEX REPLACE "/$" "" grove_pc_up "${grove_pc_up}")
  set(GROVE_PC_PREFIX "\${pcfiledir}/${grove_pc_up}")
  set(GROVE_PC_LIBDIR "\${prefix}/${CMAKE_INSTALL_LIBDIR}")
endif()
if(IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
  set(GROVE_PC_INCLUDEDIR "${CMAKE_INSTALL_INCLUDEDIR}")
else()
  set(GROVE_PC_INCLUDEDIR "\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}")
endif()
configure_file(${CMAKE_CURRENT_LIST_DIR}/grove.pc.in ${CMAKE_CURRENT_BINARY_DIR}/grove.pc @ONLY)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/grove.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
