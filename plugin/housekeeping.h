/* housekeeping.h - the KDC's purge pass, in a child process. */
#ifndef HOUSEKEEPING_H
#define HOUSEKEEPING_H

#include <sys/types.h>

#include "tkentry.h"

/*
 * At a purge tick of a KDC process: start a pass in a child process unless
 * this process's last one is still running (*child, 0 for none).  The
 * child opens the database afresh through ctx's configuration, with
 * db_args (krb5kdc -d/-x), and runs only if no other pass is running and
 * none started within cfg->purge_interval (housekeeping.c).
 */
void tk_housekeeping_tick(krb5_context ctx, const tk_config *cfg,
                          char **db_args, pid_t *child);
/* Stop this process's pass, if one is running (the module is closing). */
void tk_housekeeping_stop(pid_t *child);

#endif /* HOUSEKEEPING_H */
