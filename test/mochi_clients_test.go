package test

// mochi patch 36 (third_party/mochi-mqtt-server/PATCHES.md): Clients.GetByListener held
// the clients' read lock and called Len, which read-locks it again. A client leaving
// (Delete, a write lock) between the two blocks the second read lock behind it, and
// the write lock waits for the first: the broker's shutdown, which lists a listener's
// clients to disconnect them, hung for good when a client disconnected at that moment
// (TestWeb_Trends, "clients still connected at shutdown deadline", in CI).

import (
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
)

func TestClients_GetByListenerWhileClientsLeave(t *testing.T) {
	m := mqtt.New(&mqtt.Options{Logger: slog.New(slog.DiscardHandler)})
	cls := mqtt.NewClients()
	newClient := func(id string) *mqtt.Client { return m.NewClient(nil, "tcp", id, false) }
	for i := range 100 {
		cls.Add(newClient(fmt.Sprint("c", i)))
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 { // the listener's closer, listing the clients
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if got := len(cls.GetByListener("tcp")); got < 90 {
					t.Errorf("GetByListener listed %d clients, want at least 90", got)
					return
				}
			}
		})
	}
	for w := range 2 { // clients coming and going
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprint("churn", w, "-", i%10)
				cls.Add(newClient(id))
				cls.Delete(id)
			}
		})
	}
	time.Sleep(300 * time.Millisecond) // the churn goes on for this long, whatever happens
	close(stop)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("GetByListener and Delete deadlocked (a read lock taken twice with a writer waiting)")
	}
}
