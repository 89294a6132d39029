#include "value.h"

const char *sl_vtype_name(sl_vtype t)
{
    switch (t) {
    case SL_V_NULL:
        return "null";
    case SL_V_BOOL:
        return "boolean";
    case SL_V_INT:
    case SL_V_DOUBLE:
        return "number";
    case SL_V_STRING:
        return "string";
    case SL_V_COMPOUND:
        return "object";
    }
    return "unknown";
}
