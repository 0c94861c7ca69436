/*
 * libfascia's private map of protocol/security.c for client.c (not
 * installed): the CURVE options of a client's socket.
 */
#ifndef FASCIA_PROTOCOL_SECURITY_H
#define FASCIA_PROTOCOL_SECURITY_H

#include <stdbool.h>

#include <fascia/client.h>

/* fascia_security_apply(), which sets sec's keys on a socket, is public:
 * <fascia/client.h>. */

/* Whether sec names a certificate or a server key (CURVE, or an error). */
bool fascia_security_on(const struct fascia_security *sec);

/*
 * A PAIR socket of ctx that receives sock's handshake events, made before
 * sock connects; NULL with errno.  The caller closes it before sock's
 * context is terminated.
 */
void *fascia_security_watch(void *ctx, void *sock);

/*
 * Read the events that came to watch: returns whether the daemon has
 * refused the client's certificate (its ZAP handler said 400: the key is
 * not among its clients) since a handshake last succeeded, as kept in
 * *refused from one look to the next.
 */
bool fascia_security_refused(void *watch, bool *refused);

#endif
