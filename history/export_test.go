package history

// Lock and Unlock hold the history's lock, so a test can stall its goroutine.
func (h *History) Lock()   { h.mu.Lock() }
func (h *History) Unlock() { h.mu.Unlock() }
