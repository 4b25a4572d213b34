package archive

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// metrics are the archive's Prometheus counters, exposed in the text
// format on the configured loopback address. They count events, never
// anything about patients.
type metrics struct {
	assocAccepted, assocRefused, assocOpen atomic.Int64
	connRefused                            atomic.Int64 // refused before TLS or PDUs (abuse limits)
	storeBytes                             atomic.Int64

	mu   sync.Mutex
	byOp map[string]int64 // "op status" -> count
}

func newMetrics() *metrics { return &metrics{byOp: map[string]int64{}} }

// op counts one DIMSE operation by name and outcome.
func (m *metrics) op(name, outcome string) {
	m.mu.Lock()
	m.byOp[name+"\x00"+outcome]++
	m.mu.Unlock()
}

func (m *metrics) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/metrics" {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	fmt.Fprintf(w, "# HELP dicomshield_associations_accepted_total Associations accepted.\n# TYPE dicomshield_associations_accepted_total counter\ndicomshield_associations_accepted_total %d\n", m.assocAccepted.Load())
	fmt.Fprintf(w, "# HELP dicomshield_associations_refused_total Association requests refused (unknown peer, address, certificate, limits).\n# TYPE dicomshield_associations_refused_total counter\ndicomshield_associations_refused_total %d\n", m.assocRefused.Load())
	fmt.Fprintf(w, "# HELP dicomshield_connections_refused_total Connections refused before TLS or any DICOM message (banned address, rate or open-connection limit).\n# TYPE dicomshield_connections_refused_total counter\ndicomshield_connections_refused_total %d\n", m.connRefused.Load())
	fmt.Fprintf(w, "# HELP dicomshield_associations_open Associations open now.\n# TYPE dicomshield_associations_open gauge\ndicomshield_associations_open %d\n", m.assocOpen.Load())
	fmt.Fprintf(w, "# HELP dicomshield_store_bytes_total Bytes of instances stored.\n# TYPE dicomshield_store_bytes_total counter\ndicomshield_store_bytes_total %d\n", m.storeBytes.Load())
	m.mu.Lock()
	keys := make([]string, 0, len(m.byOp))
	for k := range m.byOp {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Fprintf(w, "# HELP dicomshield_operations_total DIMSE operations by service and outcome.\n# TYPE dicomshield_operations_total counter\n")
	for _, k := range keys {
		var op, outcome string
		for i := 0; i < len(k); i++ {
			if k[i] == 0 {
				op, outcome = k[:i], k[i+1:]
			}
		}
		fmt.Fprintf(w, "dicomshield_operations_total{op=%q,outcome=%q} %d\n", op, outcome, m.byOp[k])
	}
	m.mu.Unlock()
}

// metricsReadTimeout bounds a scrape request: it is a loopback GET.
const metricsReadTimeout = 5 * time.Second

// serveMetrics runs the metrics endpoint on l until ctx ends.
func (a *Archive) serveMetrics(ctx context.Context, l net.Listener) {
	srv := &http.Server{Handler: a.metrics, ReadHeaderTimeout: metricsReadTimeout, ReadTimeout: metricsReadTimeout}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		a.Logger.Error("metrics endpoint stopped", "err", err)
	}
}
