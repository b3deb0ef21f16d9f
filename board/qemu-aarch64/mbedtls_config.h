/* mbedTLS configuration of this board: the shared small-memory one. */
#include "../common/mbedtls-small.h"
