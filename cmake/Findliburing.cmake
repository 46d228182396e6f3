# Findliburing.cmake — finds liburing (the io_uring library) and defines the imported target
#   liburing::liburing
# and liburing_FOUND, liburing_VERSION (when pkg-config knows it), liburing_INCLUDE_DIR,
# liburing_LIBRARY. pkg-config gives hints when it is there; find_path/find_library do the
# finding, so CMAKE_PREFIX_PATH and liburing_ROOT work as usual and pkg-config is optional.
# Installed beside msgportConfig.cmake, which uses it for the runtime and io components.
find_package(PkgConfig QUIET)
if(PKG_CONFIG_FOUND)
  pkg_check_modules(PC_liburing QUIET liburing)
endif()

find_path(liburing_INCLUDE_DIR NAMES liburing.h HINTS ${PC_liburing_INCLUDEDIR} ${PC_liburing_INCLUDE_DIRS})
find_library(liburing_LIBRARY NAMES uring HINTS ${PC_liburing_LIBDIR} ${PC_liburing_LIBRARY_DIRS})
if(PC_liburing_VERSION)
  set(liburing_VERSION "${PC_liburing_VERSION}")
endif()

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(liburing
  REQUIRED_VARS liburing_LIBRARY liburing_INCLUDE_DIR
  VERSION_VAR liburing_VERSION)
mark_as_advanced(liburing_INCLUDE_DIR liburing_LIBRARY)

if(liburing_FOUND AND NOT TARGET liburing::liburing)
  add_library(liburing::liburing UNKNOWN IMPORTED)
  set_target_properties(liburing::liburing PROPERTIES
    IMPORTED_LOCATION "${liburing_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${liburing_INCLUDE_DIR}")
endif()
