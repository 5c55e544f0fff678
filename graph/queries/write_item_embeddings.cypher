// Purpose: store one batch of learned item embeddings (kgrec retrain, after promotion) as float32 arrays
//   (db.create.setNodeVectorProperty); embeddingVersion names the artifact. Ids no longer in the graph are skipped.
// Parameters: $rows: list of {id: string, vector: list of float}; $version: string
// Returns: written (int)
UNWIND $rows AS row
MATCH (n:Item {itemId: row.id})
CALL db.create.setNodeVectorProperty(n, 'embedding', row.vector)
SET n.embeddingVersion = $version
RETURN count(*) AS written
