// Package dnsfake is a recursive DNS server on the loopback for tests: what
// the probe executor's resolver, or the lab checked against it, talks to. It
// answers from a fixed table of records in zone-file syntax, follows CNAMEs and
// returns the chain before the answer as a recursive resolver does (RFC 1034
// §3.6.2; NXDOMAIN for a dangling one), answers NODATA for a name it holds
// without the type asked, and fails as a broken resolver does for names under
// the suffixes given: no reply at all, SERVFAIL, or REFUSED. The records'
// shapes are the callers' (their tables say where they come from).
package dnsfake

import (
	"net"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// Failing names, by suffix, what the server answers badly.
type Failing struct {
	Blackhole []string // never answered
	ServFail  []string // SERVFAIL
	Refused   []string // REFUSED
}

// Server is a running fake; it stops when the test ends.
type Server struct {
	Addr    string       // host:port, UDP
	Queries atomic.Int64 // every question received

	fail    Failing
	records map[key][]dns.RR
	names   map[string]bool // names that exist (NOERROR/NODATA instead of NXDOMAIN)
}

type key struct {
	name  string
	qtype uint16
}

// New starts a server answering rrs (zone-file lines).
func New(t testing.TB, fail Failing, rrs ...string) *Server {
	t.Helper()
	s := &Server{fail: fail, records: map[key][]dns.RR{}, names: map[string]bool{}}
	for _, line := range rrs {
		rr, err := dns.NewRR(line)
		require.NoError(t, err, line)
		k := key{strings.ToLower(rr.Header().Name), rr.Header().Rrtype}
		s.records[k] = append(s.records[k], rr)
		s.names[k.name] = true
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	s.Addr = pc.LocalAddr().String()
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(s.serve), NotifyStartedFunc: func() { close(started) }}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.ActivateAndServe()
	}()
	<-started
	t.Cleanup(func() {
		_ = srv.Shutdown()
		<-done
	})
	return s
}

func under(name string, suffixes []string) bool {
	name = strings.TrimSuffix(name, ".")
	for _, s := range suffixes {
		if name == s || strings.HasSuffix(name, "."+s) {
			return true
		}
	}
	return false
}

func (s *Server) serve(w dns.ResponseWriter, r *dns.Msg) {
	s.Queries.Add(1)
	q := r.Question[0]
	name := strings.ToLower(q.Name)
	if under(name, s.fail.Blackhole) {
		return
	}
	m := new(dns.Msg)
	m.SetReply(r)
	m.RecursionAvailable = true
	failing := func(name string) bool { return under(name, s.fail.ServFail) || under(name, s.fail.Refused) }
	for range 8 {
		cname := s.records[key{name, dns.TypeCNAME}]
		if q.Qtype == dns.TypeCNAME || len(cname) == 0 || failing(name) {
			break
		}
		m.Answer = append(m.Answer, cname[0])
		name = strings.ToLower(cname[0].(*dns.CNAME).Target)
	}
	switch {
	case under(name, s.fail.ServFail):
		m.Rcode = dns.RcodeServerFailure
	case under(name, s.fail.Refused):
		m.Rcode = dns.RcodeRefused
	case len(s.records[key{name, q.Qtype}]) > 0:
		m.Answer = append(m.Answer, s.records[key{name, q.Qtype}]...)
	case s.names[name]:
	default:
		m.Rcode = dns.RcodeNameError
	}
	_ = w.WriteMsg(m)
}
