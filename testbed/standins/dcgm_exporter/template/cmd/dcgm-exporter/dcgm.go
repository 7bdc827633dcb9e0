package main

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdlib.h>

static void *open_library(const char *name) { return dlopen(name, RTLD_NOW | RTLD_GLOBAL); }

static int call_init(void *handle) {
	int (*init)(void) = (int (*)(void))dlsym(handle, "dcgmInit");
	return init ? init() : -1;
}

static const char *call_version(void *handle) {
	const char *(*version)(void) = (const char *(*)(void))dlsym(handle, "dcgmDoubleVersion");
	return version ? version() : "unknown";
}
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// initDCGM loads libdcgm.so.<major of this tag> the way go-dcgm does and initialises it.
func initDCGM() (string, error) {
	name := C.CString(libdcgmName)
	defer C.free(unsafe.Pointer(name))
	handle := C.open_library(name)
	if handle == nil {
		return "", fmt.Errorf("the %s library was not found. Install Data Center GPU Manager (DCGM).", libdcgmName)
	}
	if rc := C.call_init(handle); rc != 0 {
		return "", fmt.Errorf("dcgmInit failed with %d", int(rc))
	}
	return C.GoString(C.call_version(handle)), nil
}
