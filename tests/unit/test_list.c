/* test_list.c - the intrusive list and hash chain (util/list.h): every operation against a
 * plain array model, the links checked both ways after each step. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "util/list.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define N_ITEMS 8

/* The nodes are deliberately not the first field: container-of must subtract. */
struct item {
    int id;
    char pad[13];
    struct ag_list_node node;
    int after;
    struct ag_hlist_node hnode;
};

struct model {
    int ids[N_ITEMS]; /* ids in list order */
    size_t n;
};

/* The list holds exactly m's ids in m's order, linked consistently both
 * ways, and unlinked items have NULL pointers. */
static void check(const struct ag_list *l, const struct model *m, struct item *items)
{
    size_t i = 0;
    const struct ag_list_node *prev = NULL;
    for (const struct ag_list_node *n = l->first; n; n = n->next, i++) {
        assert_true(i < m->n);
        assert_ptr_equal(n->prev, prev);
        assert_int_equal(ag_container_of(n, struct item, node)->id, m->ids[i]);
        prev = n;
    }
    assert_int_equal(i, m->n);
    assert_ptr_equal(l->last, prev);
    assert_int_equal(ag_list_empty(l), m->n == 0);
    /* and backwards from last */
    i = m->n;
    for (const struct ag_list_node *n = ag_list_last(l); n; n = n->prev)
        assert_int_equal(ag_list_entry((struct ag_list_node *)n, struct item, node)->id,
                         m->ids[--i]);
    assert_int_equal(i, 0);
    for (int id = 0; id < N_ITEMS; id++) {
        bool in = false;
        for (size_t k = 0; k < m->n; k++)
            in |= m->ids[k] == id;
        if (!in) {
            assert_null(items[id].node.prev);
            assert_null(items[id].node.next);
        }
    }
}

static void model_insert(struct model *m, size_t at, int id)
{
    memmove(m->ids + at + 1, m->ids + at, (m->n - at) * sizeof(int));
    m->ids[at] = id;
    m->n++;
}

static void model_remove(struct model *m, int id)
{
    for (size_t k = 0; k < m->n; k++)
        if (m->ids[k] == id) {
            memmove(m->ids + k, m->ids + k + 1, (m->n - k - 1) * sizeof(int));
            m->n--;
            return;
        }
    fail_msg("id %d not in model", id);
}

static bool model_has(const struct model *m, int id)
{
    for (size_t k = 0; k < m->n; k++)
        if (m->ids[k] == id)
            return true;
    return false;
}

static void init_items(struct item *items)
{
    memset(items, 0, N_ITEMS * sizeof(*items));
    for (int i = 0; i < N_ITEMS; i++)
        items[i].id = i;
}

static void test_zeroed_list_is_empty(void **state)
{
    (void)state;
    struct ag_list l;
    memset(&l, 0, sizeof(l));
    assert_true(ag_list_empty(&l));
    assert_null(ag_list_first(&l));
    assert_null(ag_list_last(&l));
    assert_null(ag_list_entry(ag_list_first(&l), struct item, node));
    l.first = (struct ag_list_node *)&l; /* garbage: init must reset it */
    ag_list_init(&l);
    assert_true(ag_list_empty(&l));
    int visited = 0;
    ag_list_for_each (it, &l, struct item, node)
        visited += it->id + 1;
    ag_list_for_each_safe (it, nx, &l, struct item, node)
        visited += it->id + 1;
    assert_int_equal(visited, 0);
}

static void test_container_of_finds_the_element(void **state)
{
    (void)state;
    struct item it = {.id = 42, .after = 7};
    assert_ptr_equal(ag_container_of(&it.node, struct item, node), &it);
    assert_ptr_equal(ag_list_entry(&it.node, struct item, node), &it);
    assert_int_equal(ag_list_entry(&it.node, struct item, node)->after, 7);
}

/* Scripted sequences: op 'F' push_first, 'L' push_last, 'R' remove, 'M'
 * move_last; each step checked against the model. */
static const struct {
    const char *name;
    const char *ops; /* pairs: op letter, item digit */
} scripts[] = {
    {"push_last keeps order", "L0L1L2L3"}, {"push_first reverses", "F0F1F2F3"},
    {"mixed ends", "L0F1L2F3L4"},          {"remove the only one", "L0R0"},
    {"remove first", "L0L1L2R0"},          {"remove last", "L0L1L2R2"},
    {"remove middle", "L0L1L2R1"},         {"remove all then reuse", "L0L1R1R0F1L0R0R1L1"},
    {"move_last of first", "L0L1L2M0"},    {"move_last of middle", "L0L1L2M1"},
    {"move_last of last", "L0L1L2M2"},     {"move_last of the only one", "L5M5"},
};

static void test_scripts_match_model(void **state)
{
    (void)state;
    for (size_t s = 0; s < ARRAY_LEN(scripts); s++) {
        struct item items[N_ITEMS];
        struct ag_list l = {0};
        struct model m = {0};
        init_items(items);
        for (const char *p = scripts[s].ops; p[0] && p[1]; p += 2) {
            int id = p[1] - '0';
            struct ag_list_node *n = &items[id].node;
            switch (p[0]) {
            case 'F':
                ag_list_push_first(&l, n);
                model_insert(&m, 0, id);
                break;
            case 'L':
                ag_list_push_last(&l, n);
                model_insert(&m, m.n, id);
                break;
            case 'R':
                ag_list_remove(&l, n);
                model_remove(&m, id);
                break;
            case 'M':
                ag_list_move_last(&l, n);
                model_remove(&m, id);
                model_insert(&m, m.n, id);
                break;
            default:
                fail_msg("bad op in %s", scripts[s].name);
            }
            check(&l, &m, items);
        }
    }
}

/* Random operations (fixed seed: reproducible) against the model. */
static void test_random_ops_match_model(void **state)
{
    (void)state;
    struct item items[N_ITEMS];
    struct ag_list l = {0};
    struct model m = {0};
    unsigned seed = 12345;
    init_items(items);
    for (int step = 0; step < 20000; step++) {
        seed = seed * 1103515245u + 12345u;
        int id = (int)((seed >> 16) % N_ITEMS);
        unsigned op = (seed >> 8) % 3;
        struct ag_list_node *n = &items[id].node;
        if (!model_has(&m, id)) {
            if (op == 0) {
                ag_list_push_first(&l, n);
                model_insert(&m, 0, id);
            } else {
                ag_list_push_last(&l, n);
                model_insert(&m, m.n, id);
            }
        } else if (op == 0) {
            ag_list_move_last(&l, n);
            model_remove(&m, id);
            model_insert(&m, m.n, id);
        } else {
            ag_list_remove(&l, n);
            model_remove(&m, id);
        }
        check(&l, &m, items);
    }
}

static void test_for_each_visits_in_order(void **state)
{
    (void)state;
    struct item items[N_ITEMS];
    struct ag_list l = {0};
    init_items(items);
    for (int i = 0; i < N_ITEMS; i++)
        ag_list_push_last(&l, &items[i].node);
    int expect = 0;
    ag_list_for_each (it, &l, struct item, node) {
        assert_int_equal(it->id, expect);
        expect++;
    }
    assert_int_equal(expect, N_ITEMS);
}

/* The safe walk survives unlinking (and freeing) the current element. */
static void test_for_each_safe_removes_and_frees(void **state)
{
    (void)state;
    struct ag_list l = {0};
    struct model m = {0};
    for (int i = 0; i < N_ITEMS; i++) {
        struct item *it = calloc(1, sizeof(*it));
        assert_non_null(it);
        it->id = i;
        ag_list_push_last(&l, &it->node);
    }
    /* drop the odd ones, keep the even */
    ag_list_for_each_safe (it, nx, &l, struct item, node) {
        if (it->id % 2) {
            ag_list_remove(&l, &it->node);
            free(it); /* ASan: any later read of it is reported */
        }
    }
    for (int i = 0; i < N_ITEMS; i += 2)
        m.ids[m.n++] = i;
    int k = 0;
    ag_list_for_each (it, &l, struct item, node)
        assert_int_equal(it->id, m.ids[k++]);
    assert_int_equal(k, (int)m.n);
    /* then all of them */
    ag_list_for_each_safe (it, nx, &l, struct item, node) {
        ag_list_remove(&l, &it->node);
        free(it);
    }
    assert_true(ag_list_empty(&l));
    assert_null(ag_list_last(&l));
}

/* ---- hlist ---------------------------------------------------------------- */

#define N_BUCKETS 3

/* Each bucket's chain holds exactly the model's ids (newest first), every
 * pprev points at the pointer that points at its node, unlinked items are
 * NULL both ways. */
static void check_buckets(struct ag_hlist_node *const *buckets, const struct model *m,
                          struct item *items)
{
    for (int b = 0; b < N_BUCKETS; b++) {
        size_t i = 0;
        struct ag_hlist_node *const *pp = &buckets[b];
        ag_hlist_for_each (it, buckets[b], struct item, hnode) {
            assert_true(i < m[b].n);
            assert_int_equal(it->id, m[b].ids[i]);
            assert_ptr_equal(it->hnode.pprev, pp);
            pp = &it->hnode.next;
            i++;
        }
        assert_int_equal(i, m[b].n);
    }
    for (int id = 0; id < N_ITEMS; id++) {
        bool in = false;
        for (int b = 0; b < N_BUCKETS; b++)
            in |= model_has(&m[b], id);
        if (!in) {
            assert_null(items[id].hnode.next);
            assert_null(items[id].hnode.pprev);
        }
    }
}

/* Random pushes and removes over three buckets (fixed seed) against the
 * model: removal of the first, a middle and the last of a chain, and of
 * the only one, all happen many times. */
static void test_hlist_random_ops_match_model(void **state)
{
    (void)state;
    struct item items[N_ITEMS];
    struct ag_hlist_node *buckets[N_BUCKETS] = {NULL};
    struct model m[N_BUCKETS] = {{{0}, 0}};
    int where[N_ITEMS];
    unsigned seed = 777;
    init_items(items);
    for (int i = 0; i < N_ITEMS; i++)
        where[i] = -1;
    for (int step = 0; step < 20000; step++) {
        seed = seed * 1103515245u + 12345u;
        int id = (int)((seed >> 16) % N_ITEMS);
        int b = (int)((seed >> 8) % N_BUCKETS);
        if (where[id] < 0) {
            ag_hlist_push(&buckets[b], &items[id].hnode);
            model_insert(&m[b], 0, id);
            where[id] = b;
        } else {
            ag_hlist_remove(&items[id].hnode);
            model_remove(&m[where[id]], id);
            where[id] = -1;
        }
        check_buckets(buckets, m, items);
    }
}

static void test_hlist_empty_bucket(void **state)
{
    (void)state;
    struct ag_hlist_node *bucket = NULL;
    struct item it = {.id = 3};
    int visited = 0;
    ag_hlist_for_each (x, bucket, struct item, hnode)
        visited++;
    assert_int_equal(visited, 0);
    ag_hlist_push(&bucket, &it.hnode);
    ag_hlist_for_each (x, bucket, struct item, hnode)
        visited += x->id;
    assert_int_equal(visited, 3);
    ag_hlist_remove(&it.hnode);
    assert_null(bucket);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_zeroed_list_is_empty),
        cmocka_unit_test(test_container_of_finds_the_element),
        cmocka_unit_test(test_scripts_match_model),
        cmocka_unit_test(test_random_ops_match_model),
        cmocka_unit_test(test_for_each_visits_in_order),
        cmocka_unit_test(test_for_each_safe_removes_and_frees),
        cmocka_unit_test(test_hlist_random_ops_match_model),
        cmocka_unit_test(test_hlist_empty_bucket),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
