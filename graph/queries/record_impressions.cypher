// Purpose: record served lists (impressions), aggregated over the lists recorded together: one append-only
//          (:Recommendation) node per list with its items in the order shown (position = index), for attribution
//          and the per-variant report; each user's exposure, the parallel arrays shownItems, shownCounts, shownTimes,
//          shownLists on the user node (item ids; times shown; last shown, epoch seconds; the user's listsShown after
//          the list that last showed it), ordered from the least to the most recently shown and bounded to the
//          $maxShown most recent items, which exposure fatigue and rotation read (user_context.cypher): one SET per
//          user per window, not one write per (user, item) pair; each user's listsShown once; each item's
//          impressions count once (exploration reads it, item_exposure.cypher). A user or item gone meanwhile gets
//          no exposure and no count (the list node is still written). The three parts are independent: each ends
//          in an aggregation, so an empty part leaves the others alone. Rows are positional lists, not maps (a
//          smaller Bolt message: no key repeated per row), users and items sorted by id (locks taken in one order).
//          The user's listsShown is set first, read inside its own SET (a read before the SET would take no lock
//          and lose another writer's update): the user's lock is then held, so the arrays read after it are the
//          committed ones and no other writer (another process's recorder, record_skip.cypher) changes them before
//          this SET: two writers of one user's exposure are serialised and keep every list.
// Parameters: $lists: list of [recommendation_id, user_id (null: nobody's list), variant, model_version,
//             shown_at (epoch seconds), item_ids];
//             $users: list of [user_id, lists (int), items: list of [item_id, count, last_shown (epoch seconds),
//             list (int, from 1: the user's list among these that last showed the item)], the items ordered by
//             list, then item id (the order they join the arrays in)];
//             $items: list of [item_id, count];
//             $maxShown: int (most items a user's exposure arrays keep: the most recently shown)
// Returns: nothing
UNWIND $lists AS row
CREATE (:Recommendation {recommendationId: row[0], userId: row[1], variant: row[2], modelVersion: row[3],
                         shownAt: row[4], itemIds: row[5]})
WITH count(*) AS created
UNWIND $users AS row
MATCH (u:User {userId: row[0]})
SET u.listsShown = coalesce(u.listsShown, 0) + row[1]
WITH u, row, u.listsShown - row[1] AS before, coalesce(u.shownItems, []) AS ids,
     [shown IN row[2] | shown[0]] AS fresh
// the window shows again exactly the items last shown, in the same order (a cached answer shown again): they are
// the arrays' tail, so the arrays are sliced, not walked item by item (Cypher evaluates a comprehension per element:
// most of the statement's cost), and shownItems keeps its value (Neo4j does not rewrite an unchanged property)
WITH u, row, before, ids, fresh, size(ids) - size(fresh) AS cut,
     coalesce(u.shownCounts, []) AS counts, coalesce(u.shownTimes, []) AS times, coalesce(u.shownLists, []) AS lists
WITH u, row, before, ids, fresh, cut, counts, times, lists, cut >= 0 AND ids[cut..] = fresh AS again_last
// otherwise the positions of the items shown again (a few) and of the others (kept in their order)
WITH u, row, before, ids, fresh, cut, counts, times, lists, again_last,
     CASE WHEN again_last THEN [] ELSE [k IN range(0, size(ids) - 1) WHERE ids[k] IN fresh] END AS again,
     CASE WHEN again_last THEN [] ELSE [k IN range(0, size(ids) - 1) WHERE NOT ids[k] IN fresh] END AS kept
WITH u, size(ids) - $maxShown + CASE WHEN again_last THEN 0 ELSE size(kept) + size(fresh) - size(ids) END AS over,
     CASE WHEN again_last THEN ids ELSE [k IN kept | ids[k]] + fresh END AS ids,
     CASE WHEN again_last
       THEN counts[..cut] + [j IN range(0, size(fresh) - 1) | counts[cut + j] + row[2][j][1]]
       ELSE [k IN kept | counts[k]] +
            [shown IN row[2] |
             shown[1] + reduce(c = 0, k IN again | CASE WHEN ids[k] = shown[0] THEN counts[k] ELSE c END)]
     END AS counts,
     CASE WHEN again_last THEN times[..cut] ELSE [k IN kept | times[k]] END + [shown IN row[2] | shown[2]] AS times,
     CASE WHEN again_last THEN lists[..cut] ELSE [k IN kept | lists[k]] END +
     [shown IN row[2] | before + shown[3]] AS lists
SET u.shownItems = CASE WHEN over > 0 THEN ids[over..] ELSE ids END,
    u.shownCounts = CASE WHEN over > 0 THEN counts[over..] ELSE counts END,
    u.shownTimes = CASE WHEN over > 0 THEN times[over..] ELSE times END,
    u.shownLists = CASE WHEN over > 0 THEN lists[over..] ELSE lists END
WITH count(*) AS users
UNWIND $items AS row
MATCH (i:Item {itemId: row[0]})
SET i.impressions = coalesce(i.impressions, 0) + row[1]
