#ifndef SLIPWAY_CSQLITE3_SHIM_H
#define SLIPWAY_CSQLITE3_SHIM_H
#include <sqlite3.h>
#endif
