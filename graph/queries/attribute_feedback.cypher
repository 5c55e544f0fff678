// Purpose: attribute a feedback to the list it names (POST /feedback with a recommendation_id): when the list exists,
//          was served to this user (or to nobody in particular: an item page's similar items, no userId) and showed
//          this item, a click (or a conversion, which is a click too) of that item is added to the list's
//          clickedItemIds (convertedItemIds), each item once per list, and a new click counts in the item's clicks
//          (exploration reads it, item_exposure.cypher).
// Parameters: $recommendationId: string, $userId: string, $itemId: string, $click: boolean, $conversion: boolean
// Returns: one row: found (the list exists), shown (it was this user's and showed the item), variant (null when not
//          found), new_click, new_conversion (whether this feedback added the item to the list's clicks, conversions)
OPTIONAL MATCH (rec:Recommendation {recommendationId: $recommendationId})
WITH rec, rec IS NOT NULL AND coalesce(rec.userId, $userId) = $userId AND $itemId IN rec.itemIds AS shown
WITH rec, shown,
     shown AND ($click OR $conversion) AND NOT $itemId IN coalesce(rec.clickedItemIds, []) AS newClick,
     shown AND $conversion AND NOT $itemId IN coalesce(rec.convertedItemIds, []) AS newConversion
FOREACH (_ IN CASE WHEN newClick THEN [1] ELSE [] END |
  SET rec.clickedItemIds = coalesce(rec.clickedItemIds, []) + $itemId)
WITH rec, shown, newClick, newConversion
OPTIONAL MATCH (item:Item {itemId: $itemId})
FOREACH (_ IN CASE WHEN newClick AND item IS NOT NULL THEN [1] ELSE [] END |
  SET item.clicks = coalesce(item.clicks, 0) + 1)
FOREACH (_ IN CASE WHEN newConversion THEN [1] ELSE [] END |
  SET rec.convertedItemIds = coalesce(rec.convertedItemIds, []) + $itemId)
RETURN rec IS NOT NULL AS found, shown, rec.variant AS variant, newClick AS new_click, newConversion AS new_conversion
