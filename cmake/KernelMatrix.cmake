# The kernel matrix (scripts/kernel-matrix.sh): Debian kernel packages booted under qemu with this build's
# binaries. `make kernel-matrix` runs it; the ctest test `KernelMatrix` (label kernel-matrix) exists only with
# -DSOCKMAPD_KERNEL_MATRIX_TEST=ON or SOCKMAPD_KERNEL_MATRIX_TEST=1 in the environment at configure time, since
# it needs root, qemu-system-x86 and a download, and takes tens of minutes (docs/testing.md).
set(SOCKMAPD_KERNEL_MATRIX_KERNELS "6.1,6.12,host" CACHE STRING "Kernels for the kernel matrix (--kernels)")
set(SOCKMAPD_KERNEL_MATRIX_FILTER "" CACHE STRING "gtest filter for the kernel matrix (empty: the script's default)")
set(SOCKMAPD_KERNEL_MATRIX_TIMEOUT 3000 CACHE STRING "Seconds per kernel in the kernel matrix (--timeout)")
option(SOCKMAPD_KERNEL_MATRIX_TEST "Add the kernel matrix as a ctest test (label kernel-matrix)"
       "$ENV{SOCKMAPD_KERNEL_MATRIX_TEST}")

set(kernel_matrix_command ${PROJECT_SOURCE_DIR}/scripts/kernel-matrix.sh --build-dir ${CMAKE_BINARY_DIR}
    --kernels ${SOCKMAPD_KERNEL_MATRIX_KERNELS} --timeout ${SOCKMAPD_KERNEL_MATRIX_TIMEOUT})
if(SOCKMAPD_KERNEL_MATRIX_FILTER)
  list(APPEND kernel_matrix_command --filter ${SOCKMAPD_KERNEL_MATRIX_FILTER})
endif()

add_custom_target(kernel-matrix COMMAND ${kernel_matrix_command}
                  DEPENDS smd_integration_tests sockmapd sockmapctl smd_origdst_proxy
                  WORKING_DIRECTORY ${PROJECT_SOURCE_DIR} USES_TERMINAL
                  COMMENT "Kernel matrix: ${SOCKMAPD_KERNEL_MATRIX_KERNELS} (logs in ${CMAKE_BINARY_DIR}/kernel-matrix)")

if(SOCKMAPD_KERNEL_MATRIX_TEST)
  string(REPLACE "," ";" kernel_matrix_kernels "${SOCKMAPD_KERNEL_MATRIX_KERNELS}")
  list(LENGTH kernel_matrix_kernels kernel_count)
  math(EXPR kernel_matrix_ctest_timeout "${kernel_count} * (${SOCKMAPD_KERNEL_MATRIX_TIMEOUT} + 300)")
  add_test(NAME KernelMatrix COMMAND ${kernel_matrix_command})
  set_tests_properties(KernelMatrix PROPERTIES LABELS kernel-matrix RUN_SERIAL TRUE
                       TIMEOUT ${kernel_matrix_ctest_timeout})
endif()
