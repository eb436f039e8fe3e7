package store_test

import (
	"testing"

	"github.com/arina-dev/arina/store"
	"github.com/arina-dev/arina/store/storetest"
)

func TestMemory(t *testing.T) {
	storetest.Run(t, func(testing.TB) store.Store { return store.NewMemory() })
}
