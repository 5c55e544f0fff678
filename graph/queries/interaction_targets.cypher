// Purpose: before recording one interaction, in one round trip: whether its item exists (else 404) and whether its
//          user does (the answer says whether the write created the user).
// Parameters: $userId: string, $itemId: string
// Returns: item_exists (boolean), user_exists (boolean)
RETURN EXISTS { MATCH (:Item {itemId: $itemId}) } AS item_exists,
       EXISTS { MATCH (:User {userId: $userId}) } AS user_exists
