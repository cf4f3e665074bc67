/* A stand-in for the driver's libnvidia-ml.so.1 with NVML's C ABI (nvml.h), answering as the
 * project's H200 machine does (driver 580.159.04, CUDA 13.0, 143771 MiB). It lets the tests run
 * envcheck's NVML probe for real, through nvidia-ml-py and through the ctypes fallback, where no
 * driver is installed.
 *
 * By default it plays a healthy GPU. Environment variables make it play a fault (read on each
 * call, so one process can change them between reads):
 *   FAKE_NVML_INIT_RC=9            nvmlInit fails with that NVML return code (9: driver not loaded)
 *   FAKE_NVML_GPUS=2               how many GPUs (1 to 8)
 *   FAKE_NVML_ECC=vc,vu,ac,au      ECC counts: volatile corrected/uncorrected, aggregate ditto
 *   FAKE_NVML_ECC_MODE=0           ECC switched off (counters then answer "not supported")
 *   FAKE_NVML_REMAP=c,u,pending,failed   row remapper: rows remapped for corrected/uncorrected
 *                                  errors, a remap pending (1) and a remap that failed (1)
 *   FAKE_NVML_RETIRED=sbe,dbe,pending    retired pages (a GPU before Ampere); when set, the row
 *                                  remapper answers "not supported", as on such a GPU
 *   FAKE_NVML_THROTTLE=0x48        clock event (throttle) reasons bitmask (default 0x1: idle)
 *   FAKE_NVML_PCIE=gen,width,maxgen,maxwidth   the link (default 5,16,5,16)
 *   FAKE_NVML_PERSISTENCE=0        persistence mode off
 *   FAKE_NVML_COMPUTE_MODE=3       compute mode (0 default, 2 prohibited, 3 exclusive process)
 *   FAKE_NVML_UNSUPPORTED=a,b      these functions answer NVML_ERROR_NOT_SUPPORTED ("all": every
 *                                  health query); FAKE_NVML_LOST=a,b: NVML_ERROR_GPU_IS_LOST
 * Built with -DFAKE_NVML_OLD_DRIVER the newer health queries are not exported at all, as with a
 * driver that predates them (pynvml then says "Function Not Found"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NVML_SUCCESS 0
#define NVML_ERROR_INVALID_ARGUMENT 2
#define NVML_ERROR_NOT_SUPPORTED 3
#define NVML_ERROR_INSUFFICIENT_SIZE 7
#define NVML_ERROR_GPU_IS_LOST 15
#define MAX_GPUS 8

typedef struct { unsigned long long total, free, used; } nvmlMemory_t;
typedef struct {
    unsigned pid;
    unsigned long long usedGpuMemory;
    unsigned gpuInstanceId, computeInstanceId;
} nvmlProcessInfo_t;
static int gpus[MAX_GPUS];

static int gpu_index(void *h) { return (int)((int *)h - gpus); }

static int listed(const char *var, const char *name) {
    const char *list = getenv(var);
    size_t n = strlen(name);
    if (!list) return 0;
    if (strcmp(list, "all") == 0) return 1;
    for (const char *p = list; (p = strstr(p, name)) != NULL; p += n) {
        int starts = p == list || p[-1] == ',';
        int ends = p[n] == '\0' || p[n] == ',';
        if (starts && ends) return 1;
    }
    return 0;
}

/* a health query's answer before it reads anything: not supported, GPU lost, or go on */
static int health_rc(const char *name) {
    if (listed("FAKE_NVML_LOST", name)) return NVML_ERROR_GPU_IS_LOST;
    if (listed("FAKE_NVML_UNSUPPORTED", name)) return NVML_ERROR_NOT_SUPPORTED;
    return NVML_SUCCESS;
}

/* up to four unsigned numbers from a comma list, defaults where absent */
static void numbers(const char *var, unsigned long long *out, int n) {
    const char *text = getenv(var);
    for (int i = 0; text && *text && i < n; i++) {
        char *end;
        out[i] = strtoull(text, &end, 0);
        text = *end == ',' ? end + 1 : end;
    }
}

static unsigned long long number(const char *var, unsigned long long fallback) {
    numbers(var, &fallback, 1);
    return fallback;
}

int nvmlInit_v2(void) {
    const char *rc = getenv("FAKE_NVML_INIT_RC");
    return rc ? atoi(rc) : 0;
}
int nvmlInitWithFlags(unsigned flags) { return nvmlInit_v2(); }
int nvmlShutdown(void) { return 0; }
const char *nvmlErrorString(int rc) {
    switch (rc) {
    case 3: return "Not Supported";
    case 9: return "Driver Not Loaded";
    case 15: return "GPU is lost";
    default: return "Unknown Error";
    }
}
static int copy(char *buf, unsigned len, const char *text) {
    if (strlen(text) + 1 > len) return NVML_ERROR_INSUFFICIENT_SIZE;
    strcpy(buf, text);
    return 0;
}
int nvmlSystemGetDriverVersion(char *buf, unsigned len) { return copy(buf, len, "580.159.04"); }
int nvmlSystemGetCudaDriverVersion_v2(int *v) { *v = 13000; return 0; }
static unsigned gpu_count(void) {
    unsigned n = (unsigned)number("FAKE_NVML_GPUS", 1);
    return n < 1 ? 1 : n > MAX_GPUS ? MAX_GPUS : n;
}
int nvmlDeviceGetCount_v2(unsigned *n) { *n = gpu_count(); return 0; }
int nvmlDeviceGetHandleByIndex_v2(unsigned i, void **h) {
    if (i >= gpu_count()) return NVML_ERROR_INVALID_ARGUMENT;
    *h = &gpus[i];
    return 0;
}
int nvmlDeviceGetName(void *h, char *buf, unsigned len) { return copy(buf, len, "NVIDIA H200"); }
int nvmlDeviceGetUUID(void *h, char *buf, unsigned len) {
    char uuid[64];
    snprintf(uuid, sizeof uuid, "GPU-0000000%d-1111-2222-3333-444444444444", gpu_index(h));
    return copy(buf, len, uuid);
}
int nvmlDeviceGetMemoryInfo(void *h, nvmlMemory_t *m) {
    m->total = 143771ULL << 20;
    m->used = 1ULL << 20;
    m->free = m->total - m->used;
    return 0;
}
int nvmlDeviceGetCudaComputeCapability(void *h, int *major, int *minor) {
    *major = 9;
    *minor = 0;
    return 0;
}
int nvmlDeviceGetMigMode(void *h, unsigned *current, unsigned *pending) {
    *current = 0;
    *pending = 0;
    return 0;
}
/* NVML_COMPUTEMODE_*: 0 default, 2 prohibited, 3 exclusive process (as bench/gpu_acceptance.py
 * plays them) */
int nvmlDeviceGetComputeMode(void *h, int *mode) {
    *mode = (int)number("FAKE_NVML_COMPUTE_MODE", 0);
    return 0;
}
int nvmlDeviceGetPersistenceMode(void *h, int *mode) {
    int rc = health_rc("nvmlDeviceGetPersistenceMode");
    if (rc) return rc;
    *mode = (int)number("FAKE_NVML_PERSISTENCE", 1);
    return 0;
}
/* one process holding 139 GiB, as during the out-of-memory fault */
int nvmlDeviceGetComputeRunningProcesses_v3(void *h, unsigned *count, nvmlProcessInfo_t *infos) {
    if (*count < 1) {
        *count = 1;
        return NVML_ERROR_INSUFFICIENT_SIZE;
    }
    infos[0].pid = 4242;
    infos[0].usedGpuMemory = 139ULL << 30;
    infos[0].gpuInstanceId = infos[0].computeInstanceId = 0xFFFFFFFF;
    *count = 1;
    return 0;
}

/* ---- health: ECC, retired memory, clocks, PCIe link, temperature and power ---- */

int nvmlDeviceGetEccMode(void *h, int *current, int *pending) {
    int rc = health_rc("nvmlDeviceGetEccMode");
    if (rc) return rc;
    *current = *pending = (int)number("FAKE_NVML_ECC_MODE", 1);
    return 0;
}
/* errorType 0 corrected, 1 uncorrected; counterType 0 volatile, 1 aggregate */
int nvmlDeviceGetTotalEccErrors(void *h, int errorType, int counterType, unsigned long long *n) {
    unsigned long long counts[4] = {0, 0, 0, 0};
    int rc = health_rc("nvmlDeviceGetTotalEccErrors");
    if (rc) return rc;
    if (!number("FAKE_NVML_ECC_MODE", 1)) return NVML_ERROR_NOT_SUPPORTED;
    if (errorType < 0 || errorType > 1 || counterType < 0 || counterType > 1)
        return NVML_ERROR_INVALID_ARGUMENT;
    numbers("FAKE_NVML_ECC", counts, 4);
    *n = counts[counterType * 2 + errorType];
    return 0;
}
/* cause 0: multiple single-bit errors, 1: a double-bit error; addresses only */
int nvmlDeviceGetRetiredPages(void *h, int cause, unsigned *count, unsigned long long *pages) {
    unsigned long long r[3] = {0, 0, 0};
    int rc = health_rc("nvmlDeviceGetRetiredPages");
    if (rc) return rc;
    if (!getenv("FAKE_NVML_RETIRED")) return NVML_ERROR_NOT_SUPPORTED; /* Ampere and later */
    numbers("FAKE_NVML_RETIRED", r, 3);
    unsigned want = (unsigned)r[cause == 1];
    if (pages == NULL || *count < want) {
        *count = want;
        return want ? NVML_ERROR_INSUFFICIENT_SIZE : 0;
    }
    for (unsigned i = 0; i < want; i++) pages[i] = 0x1000ULL * (i + 1);
    *count = want;
    return 0;
}
int nvmlDeviceGetRetiredPagesPendingStatus(void *h, int *pending) {
    unsigned long long r[3] = {0, 0, 0};
    int rc = health_rc("nvmlDeviceGetRetiredPagesPendingStatus");
    if (rc) return rc;
    if (!getenv("FAKE_NVML_RETIRED")) return NVML_ERROR_NOT_SUPPORTED;
    numbers("FAKE_NVML_RETIRED", r, 3);
    *pending = (int)r[2];
    return 0;
}
int nvmlDeviceGetTemperature(void *h, int sensor, unsigned *t) {
    int rc = health_rc("nvmlDeviceGetTemperature");
    if (rc) return rc;
    *t = 41;
    return 0;
}
/* 0 shutdown, 1 slowdown */
int nvmlDeviceGetTemperatureThreshold(void *h, int which, unsigned *t) {
    int rc = health_rc("nvmlDeviceGetTemperatureThreshold");
    if (rc) return rc;
    if (which > 1) return NVML_ERROR_NOT_SUPPORTED;
    *t = which == 0 ? 92 : 87;
    return 0;
}
int nvmlDeviceGetPowerUsage(void *h, unsigned *mw) {
    int rc = health_rc("nvmlDeviceGetPowerUsage");
    if (rc) return rc;
    *mw = 95123;
    return 0;
}
int nvmlDeviceGetEnforcedPowerLimit(void *h, unsigned *mw) {
    int rc = health_rc("nvmlDeviceGetEnforcedPowerLimit");
    if (rc) return rc;
    *mw = 700000;
    return 0;
}
static int pcie(const char *name, int which, unsigned *out) {
    unsigned long long link[4] = {5, 16, 5, 16};
    int rc = health_rc(name);
    if (rc) return rc;
    numbers("FAKE_NVML_PCIE", link, 4);
    *out = (unsigned)link[which];
    return 0;
}
int nvmlDeviceGetCurrPcieLinkGeneration(void *h, unsigned *g) {
    return pcie("nvmlDeviceGetCurrPcieLinkGeneration", 0, g);
}
int nvmlDeviceGetCurrPcieLinkWidth(void *h, unsigned *w) {
    return pcie("nvmlDeviceGetCurrPcieLinkWidth", 1, w);
}
int nvmlDeviceGetMaxPcieLinkGeneration(void *h, unsigned *g) {
    return pcie("nvmlDeviceGetMaxPcieLinkGeneration", 2, g);
}
int nvmlDeviceGetMaxPcieLinkWidth(void *h, unsigned *w) {
    return pcie("nvmlDeviceGetMaxPcieLinkWidth", 3, w);
}

#ifndef FAKE_NVML_OLD_DRIVER
int nvmlDeviceGetRemappedRows(void *h, unsigned *corr, unsigned *unc, unsigned *pending,
                              unsigned *failed) {
    unsigned long long r[4] = {0, 0, 0, 0};
    int rc = health_rc("nvmlDeviceGetRemappedRows");
    if (rc) return rc;
    if (getenv("FAKE_NVML_RETIRED")) return NVML_ERROR_NOT_SUPPORTED; /* before Ampere */
    numbers("FAKE_NVML_REMAP", r, 4);
    *corr = (unsigned)r[0];
    *unc = (unsigned)r[1];
    *pending = (unsigned)r[2];
    *failed = (unsigned)r[3];
    return 0;
}
int nvmlDeviceGetCurrentClocksEventReasons(void *h, unsigned long long *reasons) {
    int rc = health_rc("nvmlDeviceGetCurrentClocksEventReasons");
    if (rc) return rc;
    *reasons = number("FAKE_NVML_THROTTLE", 0x1);
    return 0;
}
#endif
/* the older name of the same query, which drivers keep exporting */
int nvmlDeviceGetCurrentClocksThrottleReasons(void *h, unsigned long long *reasons) {
    int rc = health_rc("nvmlDeviceGetCurrentClocksThrottleReasons");
    if (rc) return rc;
    *reasons = number("FAKE_NVML_THROTTLE", 0x1);
    return 0;
}
