package logtotest_test

import (
	"io"
	"net/http"
	"testing"

	"github.com/logto-proxy/logto-proxy/logto/logtotest"
)

// bulk100k is 100 distributors × 10 resellers × 100 customers each:
// 101,100 organizations.
func bulk100k() logtotest.BulkOptions {
	return logtotest.BulkOptions{Distributors: 100, ResellersPerDistributor: 10, CustomersPerReseller: 100}
}

func BenchmarkSeedBulk100k(b *testing.B) {
	for b.Loop() {
		s, err := logtotest.New(logtotest.Options{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.SeedBulk(bulk100k()); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		_ = s.Close()
		b.StartTimer()
	}
}

// benchGet measures one Management API GET over loopback HTTP.
func benchGet(b *testing.B, s *logtotest.Server, path string) {
	a := newAPI(b, s)
	client := &http.Client{}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodGet, s.URL()+"/api"+path, nil)
			req.Header.Set("Authorization", "Bearer "+a.token)
			res, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, res.Body)
			_ = res.Body.Close()
			if res.StatusCode != http.StatusOK {
				b.Errorf("status %d", res.StatusCode)
				return
			}
		}
	})
}

func seeded100k(b *testing.B) (*logtotest.Server, *logtotest.Bulk) {
	s := newSim(b, logtotest.Options{})
	bulk, err := s.SeedBulk(bulk100k())
	if err != nil {
		b.Fatal(err)
	}
	return s, bulk
}

func BenchmarkListOrganizations100k(b *testing.B) {
	s, _ := seeded100k(b)
	benchGet(b, s, "/organizations?page=500&page_size=100")
}

func BenchmarkGetOrganization100k(b *testing.B) {
	s, bulk := seeded100k(b)
	benchGet(b, s, "/organizations/"+bulk.Customers[12345])
}

func BenchmarkSearchOrganizations100k(b *testing.B) {
	s, _ := seeded100k(b)
	benchGet(b, s, "/organizations?q=Customer%2042.7&page_size=100")
}
