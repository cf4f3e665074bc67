/* A stand-in for the driver's libnvidia-ml.so.1 with NVML's C ABI (nvml.h), answering as the
 * project's H200 machine does (driver 580.159.04, CUDA 13.0, 143771 MiB). It lets the tests run
 * envcheck's ctypes NVML binding for real where no driver is installed. FAKE_NVML_INIT_RC makes
 * nvmlInit_v2 fail with that NVML return code (9: driver not loaded). */
#include <stdlib.h>
#include <string.h>

typedef struct { unsigned long long total, free, used; } nvmlMemory_t;
typedef struct {
    unsigned pid;
    unsigned long long usedGpuMemory;
    unsigned gpuInstanceId, computeInstanceId;
} nvmlProcessInfo_t;
static int gpu0;

int nvmlInit_v2(void) {
    const char *rc = getenv("FAKE_NVML_INIT_RC");
    return rc ? atoi(rc) : 0;
}
int nvmlShutdown(void) { return 0; }
const char *nvmlErrorString(int rc) {
    return rc == 9 ? "Driver Not Loaded" : "Unknown Error";
}
static int copy(char *buf, unsigned len, const char *text) {
    if (strlen(text) + 1 > len) return 7; /* NVML_ERROR_INSUFFICIENT_SIZE */
    strcpy(buf, text);
    return 0;
}
int nvmlSystemGetDriverVersion(char *buf, unsigned len) { return copy(buf, len, "580.159.04"); }
int nvmlSystemGetCudaDriverVersion_v2(int *v) { *v = 13000; return 0; }
int nvmlDeviceGetCount_v2(unsigned *n) { *n = 1; return 0; }
int nvmlDeviceGetHandleByIndex_v2(unsigned i, void **h) {
    if (i != 0) return 2; /* NVML_ERROR_INVALID_ARGUMENT */
    *h = &gpu0;
    return 0;
}
int nvmlDeviceGetName(void *h, char *buf, unsigned len) { return copy(buf, len, "NVIDIA H200"); }
int nvmlDeviceGetUUID(void *h, char *buf, unsigned len) {
    return copy(buf, len, "GPU-00000000-1111-2222-3333-444444444444");
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
/* NVML_COMPUTEMODE_* (0 default, 2 prohibited, 3 exclusive process) and NVML_FEATURE_*. */
static int env_int(const char *name, int fallback) {
    const char *v = getenv(name);
    return v && *v ? atoi(v) : fallback;
}
int nvmlDeviceGetComputeMode(void *h, int *mode) { *mode = env_int("FAKE_NVML_COMPUTE_MODE", 0); return 0; }
int nvmlDeviceGetPersistenceMode(void *h, int *mode) { *mode = env_int("FAKE_NVML_PERSISTENCE", 1); return 0; }
/* one process holding 139 GiB, as during the out-of-memory fault */
int nvmlDeviceGetComputeRunningProcesses_v3(void *h, unsigned *count, nvmlProcessInfo_t *infos) {
    if (*count < 1) {
        *count = 1;
        return 7; /* NVML_ERROR_INSUFFICIENT_SIZE */
    }
    infos[0].pid = 4242;
    infos[0].usedGpuMemory = 139ULL << 30;
    infos[0].gpuInstanceId = infos[0].computeInstanceId = 0xFFFFFFFF;
    *count = 1;
    return 0;
}
