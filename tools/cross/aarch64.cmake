# aarch64.cmake — CMake toolchain for a 64-bit Arm (aarch64) build of lcam from an x86-64
# Debian 12: Debian's cross compiler (crossbuild-essential-arm64) against a Debian arm64 tree
# that holds the -dev packages (LCAM_SYSROOT; tools/cross-check.sh makes one with mmdebstrap).
# CPU only: configure with -DLCAM_CUDA=OFF. Test programs run under qemu-aarch64
# (CMAKE_CROSSCOMPILING_EMULATOR), so `ctest` works in the build folder.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
# The tree: -DLCAM_SYSROOT=DIR, else the environment's LCAM_SYSROOT, else tools/cross-check.sh's.
if(NOT LCAM_SYSROOT)
  if(DEFINED ENV{LCAM_SYSROOT})
    set(LCAM_SYSROOT "$ENV{LCAM_SYSROOT}")
  else()
    get_filename_component(LCAM_SYSROOT "${CMAKE_CURRENT_LIST_DIR}/../../build-arm64/sysroot" ABSOLUTE)
  endif()
endif()
set(LCAM_SYSROOT "${LCAM_SYSROOT}" CACHE PATH "Debian arm64 tree to build against")
set(ENV{LCAM_SYSROOT} "${LCAM_SYSROOT}")  # for CMake's later reads of this file (checks, re-runs)
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES LCAM_SYSROOT)
if(NOT IS_DIRECTORY "${LCAM_SYSROOT}/usr/lib/aarch64-linux-gnu")
  message(FATAL_ERROR "LCAM_SYSROOT must name a Debian arm64 tree (tools/cross-check.sh makes one), got '${LCAM_SYSROOT}'")
endif()
set(CMAKE_SYSROOT "${LCAM_SYSROOT}")
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_FIND_ROOT_PATH "${LCAM_SYSROOT}")
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
# The tree's C runtime objects (crt1.o, ...) rather than the cross compiler's own copy.
set(CMAKE_C_FLAGS_INIT "-B${LCAM_SYSROOT}/usr/lib/aarch64-linux-gnu")
set(CMAKE_CXX_FLAGS_INIT "-B${LCAM_SYSROOT}/usr/lib/aarch64-linux-gnu")
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64;-L;${LCAM_SYSROOT})
set(ENV{PKG_CONFIG_SYSROOT_DIR} "${LCAM_SYSROOT}")
set(ENV{PKG_CONFIG_LIBDIR} "${LCAM_SYSROOT}/usr/lib/aarch64-linux-gnu/pkgconfig:${LCAM_SYSROOT}/usr/share/pkgconfig")
# FindHDF5 would ask the build machine's h5cc, which names the build machine's HDF5: search the
# tree instead.
set(HDF5_C_COMPILER_EXECUTABLE "HDF5_C_COMPILER_EXECUTABLE-NOTFOUND" CACHE FILEPATH "")
set(HDF5_ROOT "${LCAM_SYSROOT}/usr/lib/aarch64-linux-gnu/hdf5/serial;${LCAM_SYSROOT}/usr/include/hdf5/serial")
