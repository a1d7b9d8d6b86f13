package etcdtest

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// Proxy forwards loopback TCP connections to an etcd endpoint and can cut
// them all, to simulate a lost connection or an unreachable etcd. Its
// methods are safe for concurrent use.
type Proxy struct {
	l      net.Listener
	target string

	mu    sync.Mutex // protects down and conns
	down  bool
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup // the accept loop and the pipes
}

// NewProxy starts a proxy to target (host:port) on a free loopback port.
// It is closed, its goroutines ended, when the test ends.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{l: l, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

// Addr is the proxy's endpoint (host:port), for a client's Endpoints.
func (p *Proxy) Addr() string { return p.l.Addr().String() }

// SetDown(true) cuts every connection and refuses new ones until
// SetDown(false).
func (p *Proxy) SetDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	if down {
		for c := range p.conns {
			c.Close()
		}
		clear(p.conns)
	}
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.down {
			p.mu.Unlock()
			c.Close()
			continue
		}
		up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns[c], p.conns[up] = struct{}{}, struct{}{}
		p.wg.Add(2)
		p.mu.Unlock()
		go p.pipe(c, up)
		go p.pipe(up, c)
	}
}

func (p *Proxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	_, _ = io.Copy(dst, src)
	dst.Close()
	src.Close()
}

func (p *Proxy) close() {
	p.l.Close()
	p.SetDown(true)
	p.wg.Wait()
}
