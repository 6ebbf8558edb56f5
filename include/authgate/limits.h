/* limits.h - every numeric default of authgate, each with the reason for it.
 *
 * The config module exposes most of these as bounded options (AG_*_MIN/MAX
 * where a bound is not obvious); code never hard-codes a limit elsewhere.
 */
#ifndef AUTHGATE_LIMITS_H
#define AUTHGATE_LIMITS_H

/* --- HTTP heads --------------------------------------------------------- */

/* Kerberos tokens of users in many groups exceed 8 KiB; Microsoft's
 * MaxTokenSize is 48000 bytes, base64 makes that 64000: 64 KiB holds it. */
#define AG_HEADER_MAX (64 * 1024)
#define AG_HEADER_MAX_MIN 4096
#define AG_HEADER_MAX_MAX (256 * 1024)
/* Field count cap: real browsers send < 40; 200 leaves room, stops hash-DoS
 * style floods of tiny fields. */
#define AG_HEADER_FIELDS_MAX 200
/* Request target: long query strings exist, 16 KiB is what most origins take. */
#define AG_URL_MAX (16 * 1024)
/* Host name length per RFC 1035. */
#define AG_HOST_MAX 255

/* --- connections -------------------------------------------------------- */

/* A 2-core box holds this many idle keep-alive clients in well under 200 MiB. */
#define AG_MAX_CONNECTIONS 10000
#define AG_MAX_CONNECTIONS_MAX 1000000
#define AG_MAX_LISTENERS 16
#define AG_MAX_CONNECT_PORTS 64
/* Listen backlog: bursts of new connections during benchmarks and storms. */
#define AG_LISTEN_BACKLOG 1024
/* Descriptors kept free below RLIMIT_NOFILE when the accept gate decides:
 * listeners, the status socket and its clients, splice pipes, the resolver,
 * the log and the worker pools' wake-ups need some after the last client.
 * Under a limit below twice this, half the limit is kept instead (an idle
 * daemon holds about 20: a limit of 64 still serves some 16 clients). */
#define AG_FD_RESERVE 64

/* --- PROXY protocol (listen ... proxy_protocol) ------------------------ */

/* A v2 header, TLVs included: addresses take at most 216 bytes (AF_UNIX);
 * the TLVs balancers add (HAProxy's unique id and SSL details, AWS and
 * Azure endpoint ids) stay well under 1 KiB. 2 KiB holds all of that and
 * still bounds what an unauthenticated peer makes us buffer and walk.
 * (v1 has its own fixed ceiling, 107 bytes: src/http/proxyproto.h.) */
#define AG_PROXY_HEADER_MAX 2048
/* The header must be complete this long after accept: a balancer writes it
 * with (or right after) the handshake, so only a peer that is not one (or
 * a stalled path) takes seconds, and until then it holds a connection
 * slot without being anybody. */
#define AG_PROXY_PROTOCOL_TIMEOUT_MS 5000
/* Networks in proxy_protocol_from: a few balancer addresses or subnets; a
 * cap keeps the config struct fixed-size. */
#define AG_PROXY_FROM_MAX 32
/* A TLS client finishes its handshake in a few round trips (tens of ms on
 * a LAN, a second on a bad WAN); until it does it holds a connection slot
 * and a TLS state without being anybody (tls_handshake_timeout). */
#define AG_TLS_HANDSHAKE_TIMEOUT_MS 10000
/* Ciphertext received and not yet decrypted, per TLS connection: reading
 * the socket stops above it while the plaintext side is full (the TLS
 * layer's own backpressure; one record is at most 16 KiB + overhead). */
#define AG_TLS_BACKLOG_MAX (64 * 1024)

/* --- buffers ------------------------------------------------------------ */

/* Bytes read from a client but not yet parsed (pipelined requests, bytes that
 * arrive while a head is being processed). Reading stops at the ceiling. */
#define AG_INBUF_MAX (AG_HEADER_MAX + 16 * 1024)
/* Bytes queued for writing to one peer before reads on the other side stop:
 * bounded memory per connection with enough in flight to fill the pipe. */
#define AG_WRITE_HIGH_WATER (256 * 1024)
/* Size of one read from a socket. 64 KiB matches loopback segment sizes and
 * keeps per-read overhead low for large transfers. */
#define AG_READ_CHUNK (64 * 1024)
/* Response bodies at least this long (Content-Length) are relayed with
 * splice(2): below it a connection's first pump (pipe, F_SETPIPE_SZ, dups,
 * poll set-up: about ten syscalls, then kept for its later bodies) costs
 * more than the copies. */
#define AG_SPLICE_MIN (256 * 1024)
/* A chunk of a chunked response (or request) body is spliced when at least
 * this much of its data is still to come after a read: its size line
 * already parsed (framing stays llhttp's), the data goes socket to socket,
 * and the parser is told it passed. Two full reads (AG_READ_CHUNK) at
 * least: below it a first pump's set-up (pipe, dups, polls: about ten
 * syscalls) and our own size line cost more than the copies. */
#define AG_SPLICE_CHUNK_MIN (128 * 1024)
/* Bytes one splice pump moves per wakeup before it yields to the loop's other
 * connections (an open-ended tunnel whose both ends keep up would otherwise
 * never return): four 1 MiB pipe loads amortise the wakeup. */
#define AG_SPLICE_BURST (4 * 1024 * 1024)

/* --- deadlines (milliseconds) ------------------------------------------- */

/* A request head must arrive within this time (slowloris). */
#define AG_HEAD_TIMEOUT_MS 30000
/* An idle keep-alive client connection is closed after this. */
#define AG_IDLE_TIMEOUT_MS 120000
/* DNS resolution of an upstream name. */
#define AG_DNS_TIMEOUT_MS 10000
/* TCP connect to one upstream address. */
#define AG_CONNECT_TIMEOUT_MS 10000
/* Upstream silent while we wait for (more of) its response. */
#define AG_UPSTREAM_IDLE_TIMEOUT_MS 60000
/* A pooled idle upstream connection is closed after this (origins close
 * theirs at 5-75 s; closing first avoids reusing a dying connection). */
#define AG_UPSTREAM_KEEPALIVE_MS 15000
/* Idle upstream connections one event loop keeps for any client
 * ("upstream_keepalive"; 0 = no shared pool, only a client connection's
 * own). Each holds a descriptor and ~1 KiB. It must cover the requests in
 * flight at once, or every burst of answers closes what the next burst
 * connects again: at 64 (and 32 per host), 50 busy clients of one origin
 * cost a connect and a close per request, a third of the loop's CPU
 * (scripts/bench, keep-alive rows). The descriptor guard in
 * exchange_maybe_done stops pooling near the descriptor limit. */
#define AG_UPSTREAM_POOL 256
/* Ceiling of the option: past this a pool holds more descriptors than
 * the accept gate leaves for clients at the default max_connections. */
#define AG_UPSTREAM_POOL_MAX 4096
/* Idle connections kept per hop ("upstream_keepalive_per_host"): one busy
 * origin must not take the whole pool from the others, yet a parent proxy
 * is the one hop of all traffic, so half the pool. */
#define AG_UPSTREAM_POOL_PER_HOST 128
/* A CONNECT tunnel with no traffic either way. */
#define AG_TUNNEL_IDLE_TIMEOUT_MS 600000
/* Graceful shutdown waits at most this long for in-flight exchanges. */
#define AG_SHUTDOWN_TIMEOUT_MS 10000
/* On SIGTERM, listeners stay open this long first, answering /healthz with
 * 503, so a balancer's health check sees the node leave before its
 * connections are refused: 0 (off) without a balancer; a few of the
 * balancer's check intervals (HAProxy: 2 s, "fall 3") with one. */
#define AG_DRAIN_DELAY_MS 0
/* A connection being closed after its last response (close_after, errors)
 * gets this long to take what is queued for it: a live client reads a
 * reply in milliseconds; one that never reads must not hold its socket and
 * buffers (up to AG_WRITE_HIGH_WATER) for ever. */
#define AG_FLUSH_TIMEOUT_MS 5000
/* After that flush and our FIN, what the client still sends is read and
 * dropped for at most this long (a lingering close, as nginx's): closing a
 * socket with unread input makes the kernel send a reset, which throws away
 * replies the client has not read yet, such as a whole response to an
 * earlier pipelined request. A client that stops sending or closes ends it
 * at once; one that keeps sending is cut off here (timeout_linger). */
#define AG_LINGER_TIMEOUT_MS 2000
#define AG_TIMEOUT_MIN_MS 100
#define AG_TIMEOUT_MAX_MS (24 * 3600 * 1000)

/* A chunk size no real body has: 2^40 bytes (1 TiB). Senders write chunks
 * of their buffer size (KiB to MiB); a size near 2^63 is a probe for
 * integer handling further on and, forwarded, leaves both sides waiting
 * for bytes that never come. Larger sizes are refused like nginx does:
 * 400 from a client, the connection closed for an origin. */
#define AG_CHUNK_SIZE_MAX (1ULL << 40)

/* --- request bodies on refused requests --------------------------------- */

/* A body on a 407/403'd request is read and discarded up to this size to keep
 * the connection; a larger one closes it (cheaper than draining). */
#define AG_DRAIN_MAX (64 * 1024)
/* ... and must arrive within this time of the refusal. 64 KiB takes under
 * 10 s even at 64 kbit/s; a client whose announced body has not come by
 * then is gone or is holding the connection (and an NTLM handshake slot)
 * on purpose: the connection is closed. */
#define AG_DRAIN_TIMEOUT_MS 10000

/* --- authentication ----------------------------------------------------- */

/* A handshake (first token to identity) must finish in this time; a reload
 * waits as long for winbindd (the deadline a backend gets for an answer). */
#define AG_HANDSHAKE_TIMEOUT_MS 30000
/* Handshakes in progress, all clients and per client address (503 beyond). */
#define AG_MAX_HANDSHAKES 4096
#define AG_MAX_HANDSHAKES_PER_ADDR 256
/* One client address (IPv6: one /64) may hold at most this fraction of
 * max_handshakes, whatever max_handshakes_per_addr says: a few flooding
 * addresses leave slots for everyone else (the per-address cap in force is
 * min(max_handshakes_per_addr, max(1, max_handshakes / 4))). */
#define AG_HANDSHAKE_SHARE_DIV 4
/* Retry-After of our own 503s (a full handshake or job cap, a backend that
 * failed or timed out): long enough for a burst to drain, short enough that
 * a browser retries before its user gives up. Seconds. */
#define AG_RETRY_AFTER_S 5
#define AG_STRINGIFY_(x) #x
#define AG_STRINGIFY(x) AG_STRINGIFY_(x)
/* The field itself, for the replies that carry it. */
#define AG_RETRY_AFTER_FIELD "Retry-After: " AG_STRINGIFY(AG_RETRY_AFTER_S) "\r\n"
/* Verification jobs queued or running, per worker pool (503 beyond): per
 * pool, so a stalled winbindd filling its queue leaves Kerberos its room. */
#define AG_MAX_JOBS 1024
/* Event loops (workers N), each a thread with its own SO_REUSEPORT listeners
 * and connections; 0 = auto, one per CPU (the default: every core forwards).
 * More loops than CPUs only add switching; 64 bounds the per-loop state a
 * bad value could ask for. */
#define AG_WORKERS 0
#define AG_WORKERS_MAX 64

/* libuv's thread pool now serves DNS (getaddrinfo) only: a lookup blocks for
 * up to dns_timeout, so several run at once. */
#define AG_THREADPOOL_SIZE 8
#define AG_THREADPOOL_MAX 128
/* Verification threads per backend (src/server/work.h). winbind: calls mostly
 * wait on winbindd, which serves a few requests at once per client; 4 keeps
 * its queue short without adding to a stalled winbindd's backlog. Kerberos:
 * ticket checks are CPU-bound (AES, the replay cache), so one thread per CPU
 * (0 = uv_available_parallelism()) is fastest; more only adds switching.
 * local: an MD4/HMAC-MD5 per check, microseconds; 2 keeps one busy client
 * from delaying the next. */
#define AG_WINBIND_THREADS 4
#define AG_KERBEROS_THREADS 0
#define AG_LOCAL_THREADS 2
/* A thread each holds a stack and (winbind) a winbindd connection. */
#define AG_WORKER_THREADS_MAX 64
/* Rounds per handshake: NTLM needs 2 (3 with a retry), Negotiate 1-3. */
#define AG_NTLM_MAX_ROUNDS 3
#define AG_NEGOTIATE_MAX_ROUNDS 5
/* Base64 Basic credentials: user (<=255) + ':' + password (<=1024). */
#define AG_BASIC_MAX_DECODED 1300
/* A decoded NTLM message: real ones are < 1.5 KiB. */
#define AG_NTLM_MAX_DECODED 4096
/* Cache lifetime of a successful Basic verification (seconds). */
#define AG_BASIC_CACHE_TTL_S 300
#define AG_BASIC_CACHE_MAX 65536
/* Failures within the window before further attempts are refused without
 * calling the backend: per (user, client address): a person mistyping
 * stops well before 5, a guesser is held there without touching anyone
 * else; per address, any user: 50 lets a NAT gateway's users mistype, and
 * bounds a guesser that rotates users; per user (verified wrong passwords
 * from every address): 10 stays under a typical domain lockout threshold
 * (Microsoft's baseline is 10 in 15 minutes; lower it where the domain's is
 * lower). */
#define AG_FAIL_MAX_PER_USER_ADDR 5
#define AG_FAIL_MAX_PER_USER 10
#define AG_FAIL_MAX_PER_ADDR 50
#define AG_FAIL_WINDOW_S 60
/* Keys tracked per throttle table (pairs, addresses, users): 65536 live
 * keys are ~10 MiB at most and far above the failures real traffic makes
 * in one window; when full, untracked keys are refused (fail-safe). */
#define AG_THROTTLE_MAX_KEYS 65536
/* The user file: lines and total size. */
#define AG_USERFILE_MAX_BYTES (16 * 1024 * 1024)
#define AG_USER_MAX 255
#define AG_PASSWORD_MAX 1024

/* --- config file -------------------------------------------------------- */

#define AG_CONFIG_MAX_BYTES (1024 * 1024)
#define AG_CONFIG_LINE_MAX 4096

/* ntlm */
/* AV pairs walked in one NTLMv2 blob (client echo of our target info plus
 * its own): Windows sends about 11, so 64 is generous; the cap bounds the
 * walk and the quadratic echo check. */
#define AG_NTLM_MAX_AV_PAIRS 64
/* Domain and workstation names in an AUTHENTICATE, in UTF-8 bytes: the same
 * 255 as AG_USER_MAX (AD names are far shorter; winbind is never given more). */
#define AG_NTLM_NAME_MAX 255
/* The proxy's names an MsvAvTargetName may carry (relay defence): proxy_host
 * and the host of an explicit HTTP negotiate_acceptor. */
#define AG_NTLM_SPN_NAMES_MAX 2
/* Accepted MsvAvTargetName spellings: HTTP/<name> and HTTP/<name>:<port> for
 * every name and listening port (Chromium names the port when it is not 80). */
#define AG_NTLM_SPNS_MAX (AG_NTLM_SPN_NAMES_MAX * (1 + AG_MAX_LISTENERS))
/* One spelling: "HTTP/" + a DNS name (at most 253) + ":65535" + NUL. */
#define AG_NTLM_SPN_LEN_MAX 272

/* config bounds */
/* Refused-request bodies read to keep a connection: past 1 MiB, closing and
 * letting the client reconnect costs less than reading. */
#define AG_DRAIN_MAX_MAX (1024 * 1024)
/* Handshakes in progress can never outnumber connections. */
#define AG_MAX_HANDSHAKES_MAX AG_MAX_CONNECTIONS_MAX
/* Jobs beyond this only queue behind the pool's threads: more is not faster. */
#define AG_MAX_JOBS_MAX 65536
/* Failure counters: beyond this a lockout protects nothing. */
#define AG_FAIL_MAX_MAX 100000
/* Values on one config line: far above the longest list (connect_ports), so
 * only a garbage line hits it; bounds the tokenizer's stack array. */
#define AG_CONFIG_MAX_VALUES 128

/* A Kerberos user's group SIDs looked up through winbind (for group rules)
 * are reused this long: group changes reach the proxy within 5 minutes, and
 * a burst of new connections costs one lookup per user. */
#define AG_GROUP_CACHE_TTL_MS (300 * 1000)
#define AG_GROUP_CACHE_MAX 4096
/* "realm_domain" lines: one per Kerberos realm whose users have accounts in
 * a winbind domain other than winbind's own (trusted domains of a forest);
 * a list this long is already a configuration nobody can review. */
#define AG_REALM_DOMAINS_MAX 64
/* A realm is a DNS name in practice (RFC 4120 6.1 allows more; MIT and AD
 * use DNS-style realms): 253 characters. */
#define AG_REALM_NAME_MAX 253

/* ctl */
/* Entries in the status socket's uid/gid allow-lists: a handful of admin
 * accounts and groups; a cap keeps the config struct fixed-size. */
#define AG_CTL_ALLOW_MAX 16
/* One reply (sessions of 10,000 connections at ~160 bytes a line fits). */
#define AG_CTL_REPLY_MAX (4 * 1024 * 1024)
/* A stats key, metric name or label once a scheme or pool name is put in
 * (src/server/stats.def): the longest is under 50; test_stats checks that
 * every row fits, so nothing is ever cut. */
#define AG_STAT_NAME_MAX 96
/* Control connections at once: operators and a scraper, never thousands. */
#define AG_CTL_MAX_CONNS 16
/* A control connection must send its command and read its reply within
 * this: a stuck script cannot hold one of the slots above forever. */
#define AG_CTL_TIMEOUT_MS 10000

/* --- the Prometheus listener (metrics_listen) ---------------------------- */

/* A scrape is a request line and a few headers (Prometheus sends about 300
 * bytes): a request head larger than this is not a scraper (431). */
#define AG_METRICS_REQ_MAX 4096
/* Scrapers at once: a few Prometheus replicas, never thousands. */
#define AG_METRICS_MAX_CONNS 16
/* From the answer to its last byte out (the request itself has head_timeout):
 * Prometheus' default scrape timeout is 10 s, so a scraper that reads
 * slower has given up anyway. */
#define AG_METRICS_TIMEOUT_MS 10000
/* The part of an Accept field kept to choose the format: Prometheus' own
 * is about 150 bytes. */
#define AG_METRICS_ACCEPT_MAX 512
/* "status" waits this long for winbindd's ping, then reports it down: a
 * healthy winbindd answers in milliseconds, and the operator asking is
 * likely looking at a stalled one. */
#define AG_CTL_PING_TIMEOUT_MS 2000

/* --- PAC file and parent proxies ---------------------------------------- */

/* A PAC file (pac_file) is held in memory and sent whole: large enterprise
 * PAC files with long host lists run to tens of KiB; 256 KiB leaves room
 * and bounds what every loop serves from one buffer. */
#define AG_PAC_MAX (256 * 1024)
/* Parents (parent NAME HOST:PORT ...): a few upstream proxies (an ISP
 * proxy, a filtering proxy, a partner's); a cap keeps the config struct
 * fixed-size and the route lists short to scan. */
#define AG_PARENTS_MAX 16
/* Parents one route (route=a,b,...) may try in order. */
#define AG_ROUTE_PARENTS_MAX AG_PARENTS_MAX
/* A parent that refused a connection (or timed out) is skipped this long
 * before it is tried again: long enough that a dead parent does not cost
 * every request a connect timeout, short enough that a restarted one is
 * back within a minute. */
#define AG_PARENT_BACKOFF_MS 30000
/* Health slots kept across reloads (one per parent name and address ever
 * configured in this process); past it new parents have no back-off. */
#define AG_PARENT_SLOTS 64
/* TLS client contexts kept (one per CA file that verifies a "parent ...
 * tls", plus the system store's): every parent of one configuration and
 * those of the previous one, so a reload never evicts a context in use by
 * the running configuration (past it the oldest loaded is replaced; open
 * connections keep theirs by reference). */
#define AG_TLS_CLIENT_CTX_MAX (2 * AG_PARENTS_MAX + 2)
/* A parent's Basic credentials file: one "user:password" line. */
#define AG_PARENT_CRED_MAX 1024
/* A parent's answer to our CONNECT: a status line and a few fields. */
#define AG_PARENT_CONNECT_HEAD_MAX (16 * 1024)

/* --- authgate doctor ---------------------------------------------------- */

/* A doctor check that talks to the network (KDC, DNS, winbindd, a domain
 * controller) runs in a child process killed past this: MIT krb5 tries each
 * KDC for a few seconds and a hung winbindd holds a call ~65 s; an operator
 * waiting for a diagnosis gets one line per check within 10 s instead. */
#define AG_DOCTOR_CHECK_TIMEOUT_MS 10000
/* What one bounded check may print: a few lines; more is a bug, cut. */
#define AG_DOCTOR_OUTPUT_MAX (64 * 1024)
/* Clock skew to the KDC: Kerberos refuses authenticators beyond 300 s (the
 * default clockskew, MIT and AD alike); past a minute the clock is drifting
 * and NTP needs a look before it gets there. */
#define AG_DOCTOR_SKEW_WARN_S 60
#define AG_DOCTOR_SKEW_FAIL_S 300

/* --- authgate import-squid --------------------------------------------- */

/* A squid.conf, comments included: Debian's fully commented default is
 * ~350 KiB; 4 MiB holds any real one and stops a runaway include. */
#define AG_SQUID_CONF_MAX (4 * 1024 * 1024)
/* One logical line (continuations joined): long acl lists stay far below. */
#define AG_SQUID_LINE_MAX (16 * 1024)
/* include depth and files read in all: Squid nests a few levels at most. */
#define AG_SQUID_INCLUDE_DEPTH 8
#define AG_SQUID_FILES_MAX 64
/* acl, http_access and values held while translating: a config past these
 * is not one an operator reviews by hand; the importer stops with a reason. */
#define AG_SQUID_ACLS_MAX 1024
#define AG_SQUID_ACCESS_MAX 1024
#define AG_SQUID_WORDS_MAX 256
/* The translated files (a config and a rules file). */
#define AG_SQUID_OUT_MAX (1024 * 1024)

/* --- error pages (error_templates) ------------------------------------ */

/* One error page template: a styled page with a logo reference is 2-4 KiB;
 * 16 KiB leaves room and keeps a page set at 96 KiB per config. */
#define AG_ERROR_TEMPLATE_MAX (16 * 1024)
/* One placeholder value before escaping (a host is at most 255 bytes, a
 * rule detail or user name far less): a longer one is cut, never a page
 * that grows with what a client sends. */
#define AG_ERROR_VALUE_MAX 512
/* A rendered page: the template plus escaped values (6 bytes per byte at
 * worst); a template that repeats placeholders past this gets the plain
 * body instead (counted: limit_error_page). */
#define AG_ERROR_PAGE_MAX (64 * 1024)
/* error_contact: a line of text (a phone number, an address, a URL). */
#define AG_ERROR_CONTACT_MAX 200

/* --- logs ---------------------------------------------------------------- */

/* log_buffer: nginx's access_log buffer= default order of size. 64 KiB is
 * ~500 access lines: one write(2) per ~500 requests instead of one each,
 * and still a small loss if the process is killed (at most 1 s of lines). */
#define AG_LOG_BUFFER (64 * 1024)
/* The largest log_buffer: past 1 MiB a write only grows the loss on a kill. */
#define AG_LOG_BUFFER_MAX (1024 * 1024)
/* A buffered line waits at most this long (nginx's flush=1s): a tail -f or a
 * log shipper sees each request within a second. */
#define AG_LOG_FLUSH_MS 1000
/* An access-log line built on the stack; a longer one (a long URL) takes
 * the heap, never a cut: the URL is at most AG_URL_MAX, escaped 4x. */
#define AG_ACCESS_LINE_MAX 4096

/* Rules compiled into candidate sets (src/rules): the evaluation's bitsets
 * live on the stack, 2 x 4 KiB at this size. A larger rules file (no real
 * policy is near it) is evaluated by the linear walk. */
#define AG_RULES_INDEX_MAX 32768

/* A rules file: a policy of 10,000 rules (the size the compiled evaluation
 * is measured at) with several matchers each is 1-2 MiB; 8 MiB still
 * bounds what a reload reads and parses. */
#define AG_RULES_MAX_BYTES (8 * 1024 * 1024)

/* A keep-alive connection idle this long gives its buffers (input, heads,
 * staging, log URL: ~2 KiB) back to the allocator, where other connections
 * take them: back-to-back requests reuse them without an allocation, and
 * thousands of idle clients do not each hold a set. */
#define AG_IDLE_RELEASE_MS 1000

/* After idle releases, the heap's free pages go back to the kernel this
 * long after the first of them (malloc_trim): the released buffers of
 * thousands of idle clients lie in holes between live connections, where
 * glibc never returns them by itself, so RSS kept the peak. One trim per
 * loop per half second at most: trimming after every release would make
 * the next allocations fault the same pages in again. */
#define AG_HEAP_TRIM_DELAY_MS 500

/* Why the last parent of a route could not be used ("NAME: in back-off",
 * "NAME: TLS: ..."), for the parent_none_left log line: a parent name and
 * a short reason. Made only when a parent fails (conn.h: parent_why). */
#define AG_PARENT_WHY_MAX 160

/* The most a client connection's own struct may take (conn.h; the bytes
 * every idle keep-alive client holds besides its libuv handles' kernel
 * side): issue 16 asks an idle connection for under 2 KiB in all, and
 * this keeps room for the allocator's header and the idle upstream's
 * share. A field that pushes it over belongs in a part made on first use
 * (like the splice relay or the TLS layer). */
#define AG_CONN_STRUCT_MAX 1664

#endif
