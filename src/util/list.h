/* list.h - the one intrusive doubly linked list.
 *
 * Glossary: node = a struct ag_list_node embedded in the element (the
 * element owns its node; the list owns nothing and frees nothing); list =
 * its two ends, first and last; entry = the element a node is embedded in
 * (ag_list_entry, a container-of that maps NULL to NULL); hlist = the chain
 * of one hash bucket (below): a one-pointer head, O(1) unlink all the same.
 *
 * Why NULL-terminated with a two-pointer head rather than a circular list
 * with a sentinel: every holder here (the server of a loop, the caches,
 * the tables) is calloc'd, and an all-zero list is a valid empty one, so
 * nothing has to remember an init call and nothing breaks if the holder
 * is copied while empty. A node that is not linked has both pointers NULL.
 *
 * Each list keeps no count: its holder counts what it needs. Not
 * thread-safe; a list is guarded by whoever owns its holder. Pure, any
 * thread, no allocation.
 */
#ifndef AG_LIST_H
#define AG_LIST_H

#include <stdbool.h>
#include <stddef.h>

struct ag_list_node {
    struct ag_list_node *prev; /* toward first; NULL at the first */
    struct ag_list_node *next; /* toward last; NULL at the last */
};

struct ag_list {
    struct ag_list_node *first; /* NULL when empty */
    struct ag_list_node *last;  /* NULL when empty */
};

/* Empties l without touching the nodes (for a holder not zeroed). */
static inline void ag_list_init(struct ag_list *l)
{
    l->first = l->last = NULL;
}

static inline bool ag_list_empty(const struct ag_list *l)
{
    return l->first == NULL;
}

static inline struct ag_list_node *ag_list_first(const struct ag_list *l)
{
    return l->first;
}

static inline struct ag_list_node *ag_list_last(const struct ag_list *l)
{
    return l->last;
}

/* Links n (not in any list) as the new first. */
static inline void ag_list_push_first(struct ag_list *l, struct ag_list_node *n)
{
    n->prev = NULL;
    n->next = l->first;
    if (l->first)
        l->first->prev = n;
    else
        l->last = n;
    l->first = n;
}

/* Links n (not in any list) as the new last. */
static inline void ag_list_push_last(struct ag_list *l, struct ag_list_node *n)
{
    n->next = NULL;
    n->prev = l->last;
    if (l->last)
        l->last->next = n;
    else
        l->first = n;
    l->last = n;
}

/* Unlinks n, which must be in l, in O(1); n's pointers end NULL. */
static inline void ag_list_remove(struct ag_list *l, struct ag_list_node *n)
{
    if (n->prev)
        n->prev->next = n->next;
    else
        l->first = n->next;
    if (n->next)
        n->next->prev = n->prev;
    else
        l->last = n->prev;
    n->prev = n->next = NULL;
}

/* Moves n, which must be in l, to the last place (an LRU touch). */
static inline void ag_list_move_last(struct ag_list *l, struct ag_list_node *n)
{
    ag_list_remove(l, n);
    ag_list_push_last(l, n);
}

/* The element of type `type` whose field `member` is the node p. */
#define ag_container_of(p, type, member) ((type *)(void *)((char *)(p)-offsetof(type, member)))

/* As ag_container_of, but NULL for NULL (the end of a walk, an empty list):
 * a function, so that p is evaluated once. n: a list or an hlist node. */
static inline void *ag_list_entry_at(void *n, size_t off)
{
    return n ? (void *)((char *)n - off) : NULL;
}
#define ag_list_entry(n, type, member) ((type *)ag_list_entry_at((n), offsetof(type, member)))

/* Walks l from first to last with `type *pos` declared by the loop. The
 * body must not unlink pos (use ag_list_for_each_safe for that). */
#define ag_list_for_each(pos, l, type, member)                                                     \
    for (type *pos = ag_list_entry((l)->first, type, member); pos;                                 \
         pos = ag_list_entry(pos->member.next, type, member))

/* As ag_list_for_each, but the body may unlink (and free) pos: its successor
 * nxt is read before the body runs. The body must not unlink nxt. */
#define ag_list_for_each_safe(pos, nxt, l, type, member)                                           \
    for (type *pos = ag_list_entry((l)->first, type, member),                                      \
              *nxt = pos ? ag_list_entry(pos->member.next, type, member) : NULL;                   \
         pos; pos = nxt, nxt = pos ? ag_list_entry(pos->member.next, type, member) : NULL)

/* --- hlist: the chain of one hash bucket -------------------------------------
 * A bucket is one pointer (struct ag_hlist_node *, NULL when empty), so a
 * bucket array is half the size of one of lists; a node finds its way out
 * without the bucket through pprev, the pointer that points at it (the
 * bucket itself or the previous node's next). */

struct ag_hlist_node {
    struct ag_hlist_node *next;   /* NULL at the end of the chain */
    struct ag_hlist_node **pprev; /* the pointer that points at this node */
};

/* Links n (not in any chain) first in *bucket. */
static inline void ag_hlist_push(struct ag_hlist_node **bucket, struct ag_hlist_node *n)
{
    n->next = *bucket;
    if (n->next)
        n->next->pprev = &n->next;
    n->pprev = bucket;
    *bucket = n;
}

/* Unlinks n, which must be in a chain, in O(1); n's pointers end NULL. */
static inline void ag_hlist_remove(struct ag_hlist_node *n)
{
    *n->pprev = n->next;
    if (n->next)
        n->next->pprev = n->pprev;
    n->next = NULL;
    n->pprev = NULL;
}

/* Walks the chain of bucket (a struct ag_hlist_node *) with `type *pos`
 * declared by the loop. The body must not unlink pos. */
#define ag_hlist_for_each(pos, bucket, type, member)                                               \
    for (type *pos = ag_list_entry((bucket), type, member); pos;                                   \
         pos = ag_list_entry(pos->member.next, type, member))

#endif
