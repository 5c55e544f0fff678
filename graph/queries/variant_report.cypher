// Purpose: the online figures of each variant (`kgrec report`) from the recorded lists: lists served, impressions
//          (items shown), clicks and conversions attributed to them (distinct items per list; a conversion is a click
//          too), for the lists served at or after $since.
// Parameters: $since: int (epoch seconds; 0 = all)
// Returns: variant, lists, impressions, clicks, conversions (ints), one row per variant, by variant name
MATCH (rec:Recommendation)
WHERE rec.shownAt >= $since
RETURN rec.variant AS variant, count(*) AS lists, sum(size(rec.itemIds)) AS impressions,
       sum(size(coalesce(rec.clickedItemIds, []))) AS clicks,
       sum(size(coalesce(rec.convertedItemIds, []))) AS conversions
ORDER BY variant
