/* MKL's vendor check answered "Intel", whatever the CPU: preloaded (LD_PRELOAD) into a process
 * whose torch carries MKL, it makes MKL dispatch as on an Intel processor of the same
 * instruction sets. torch's libtorch_cpu calls these two functions through its PLT, so a
 * preloaded definition replaces MKL's own; mygo_mkl_vendor_checks counts the times it was asked.
 * It changes which code MKL picks, not what the CPU can run: an AMD CPU stays AVX2-only.
 * tests/test_vendor_ops.py and bench/mkl_intel_dispatch.py use it to run MKL's Intel branch on
 * an AMD CPU.
 *
 *     cc -shared -fPIC -O2 -o libmkl_intel_dispatch.so tests/mkl_intel_dispatch.c
 */
long mygo_mkl_vendor_checks = 0;

int mkl_serv_intel_cpu_true(void) { mygo_mkl_vendor_checks++; return 1; }
int mkl_serv_intel_cpu(void) { mygo_mkl_vendor_checks++; return 1; }
