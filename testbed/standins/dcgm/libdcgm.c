/* Stand-in for DCGM's libdcgm.so.N: what dcgm-exporter loads (by its soname) and initialises.
 * Built once per DCGM major version with -DDCGM_VERSION="3.3.9" and -soname libdcgm.so.3. */
#ifndef DCGM_VERSION
#define DCGM_VERSION "0.0.0"
#endif

int dcgmInit(void) { return 0; }

int dcgmShutdown(void) { return 0; }

const char *dcgmDoubleVersion(void) { return DCGM_VERSION; }
