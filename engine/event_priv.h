/*
 * event_priv.h - what event.c and event_write.c share; not for other modules.
 */
#ifndef SL_EVENT_PRIV_H
#define SL_EVENT_PRIV_H

#include "event.h"

/* ev->t_key when the record had a key that is not valid JSON. */
#define SL_EV_BAD_KEY (-2)

/* Text of string value token t of j (ev->v or ev->k): a view into the source
 * when it has no escapes, else unescaped once into ev->scratch (never moves
 * it). Not for object keys. Non-strings give "". */
sl_str sl_ev_str(sl_event *ev, sl_json *j, int t);

/* "a number", "an object", ... for messages. */
const char *sl_ev_jtype_name(int type);

/* Payload token of a {"schema":...,"payload":...} converter envelope at root
 * (exactly those two members), or -1; *schema gets the schema token. */
int sl_ev_envelope_payload(const sl_json *j, int root, int *schema);

#endif
