package sqlite

// Checkpoints reports how many PASSIVE and TRUNCATE checkpoints the
// background checkpointer has run.
func (db *DB) Checkpoints() (passive, truncate int64) {
	return db.ckpt.passives.Load(), db.ckpt.truncates.Load()
}
