/* Lookup of the status page's files (status_page.h). */
#include "status_page.h"

#include <string.h>

const page_file *page_find(const char *path)
{
    for (const page_file *f = page_files; f->path; f++)
        if (strcmp(f->path, path) == 0)
            return f;
    return NULL;
}
