/*
 * status.c: text for the project's status codes, generated from the one
 * MC_STATUS table in status.h so that a new code cannot lack a description.
 */
#include "status.h"

#include <stddef.h>

const char *mc_status_str(enum mc_status status)
{
#define MC_STATUS_TEXT(name, text) [name] = text,
    static const char *const text[] = {MC_STATUS(MC_STATUS_TEXT)};
#undef MC_STATUS_TEXT
    if ((unsigned)status >= sizeof(text) / sizeof(text[0]) || text[status] == NULL)
        return "unknown status";
    return text[status];
}
