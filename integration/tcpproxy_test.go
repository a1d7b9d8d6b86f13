package integration

import (
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// cutMode says what a cut tcpProxy does with new connections.
type cutMode int

const (
	// cutRefuse accepts and at once resets new connections (SO_LINGER 0),
	// so clients fail fast as if the port were closed. The listener stays
	// bound, so healing cannot lose the port to another process.
	cutRefuse cutMode = iota + 1
	// cutBlackhole accepts new connections and never answers nor forwards
	// them, like a network that drops packets: clients wait for their own
	// timeouts.
	cutBlackhole
)

func (m cutMode) String() string {
	switch m {
	case cutRefuse:
		return "refuse"
	case cutBlackhole:
		return "blackhole"
	}
	return "healthy"
}

// tcpProxy forwards TCP connections from a loopback port to a target
// address, and can be cut (every open connection closed, new ones refused
// or blackholed) and healed. Use it as a node's announced gRPC address so
// that every other node reaches that node only through the proxy.
//
// All methods are safe for concurrent use. Close ends every connection and
// waits for every goroutine the proxy started.
type tcpProxy struct {
	ln net.Listener
	wg sync.WaitGroup // accept loop and one goroutine per connection direction

	mu       sync.Mutex // protects the fields below
	target   string
	mode     cutMode // 0: forwarding
	conns    map[net.Conn]struct{}
	closed   bool
	accepted int // connections accepted
	proxied  int // connections forwarded to the target
	dropped  int // connections refused or blackholed while cut
}

// startTCPProxy listens on a fresh loopback port and forwards to target
// (which may be set later with setTarget, before the first connection).
// The proxy is closed when the test ends.
func startTCPProxy(t testing.TB, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("tcp proxy: listen: %v", err)
	}
	p := &tcpProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.acceptLoop()
	t.Cleanup(p.close)
	return p
}

// addr is the proxy's listen address (host:port).
func (p *tcpProxy) addr() string { return p.ln.Addr().String() }

func (p *tcpProxy) setTarget(target string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.target = target
}

// stats returns how many connections were accepted, forwarded, and
// refused or blackholed.
func (p *tcpProxy) stats() (accepted, proxied, dropped int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepted, p.proxied, p.dropped
}

// cut closes every open connection and from now on treats new ones as
// mode says, until heal.
func (p *tcpProxy) cut(mode cutMode) {
	p.mu.Lock()
	p.mode = mode
	conns := p.takeConnsLocked()
	p.mu.Unlock()
	for _, c := range conns {
		resetConn(c)
	}
}

// heal forwards new connections again. Connections blackholed during the
// cut are closed, so their clients reconnect instead of waiting on them.
func (p *tcpProxy) heal() {
	p.mu.Lock()
	wasBlackhole := p.mode == cutBlackhole
	p.mode = 0
	var conns []net.Conn
	if wasBlackhole {
		conns = p.takeConnsLocked()
	}
	p.mu.Unlock()
	for _, c := range conns {
		resetConn(c)
	}
}

// close stops listening, closes every connection and waits for the
// proxy's goroutines. Safe to call twice.
func (p *tcpProxy) close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	conns := p.takeConnsLocked()
	p.mu.Unlock()
	p.ln.Close()
	for _, c := range conns {
		c.Close()
	}
	p.wg.Wait()
}

// takeConnsLocked empties the connection set and returns what it held.
func (p *tcpProxy) takeConnsLocked() []net.Conn {
	out := make([]net.Conn, 0, len(p.conns))
	for c := range p.conns {
		out = append(out, c)
	}
	clear(p.conns)
	return out
}

// track adds c to the set closed by cut and close; false means the proxy
// was closed and the caller must close c itself.
func (p *tcpProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

// trackPair adds a forwarded pair unless the proxy was closed or cut since
// the client connected (then the caller resets both).
func (p *tcpProxy) trackPair(client, upstream net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.mode != 0 {
		return false
	}
	p.conns[client] = struct{}{}
	p.conns[upstream] = struct{}{}
	p.proxied++
	return true
}

func (p *tcpProxy) untrack(c net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.conns, c)
}

// resetConn closes c with SO_LINGER 0, so the peer sees a reset rather
// than an orderly end of stream.
func resetConn(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	c.Close()
}

func (p *tcpProxy) acceptLoop() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// A transient accept error (for example EMFILE): back off a
			// little rather than spin.
			time.Sleep(10 * time.Millisecond)
			continue
		}
		p.mu.Lock()
		p.accepted++
		mode, target := p.mode, p.target
		if mode != 0 {
			p.dropped++
		}
		p.mu.Unlock()
		switch mode {
		case cutRefuse:
			resetConn(c)
		case cutBlackhole:
			// Hold the connection without reading it until heal or close
			// resets it.
			if !p.track(c) {
				c.Close()
			}
		default:
			p.wg.Add(1)
			go p.forward(c, target)
		}
	}
}

// forward connects client to target and copies both ways until either
// side ends or the proxy cuts the pair.
func (p *tcpProxy) forward(client net.Conn, target string) {
	defer p.wg.Done()
	upstream, err := net.DialTimeout("tcp", target, 5*time.Second)
	if err != nil {
		resetConn(client)
		return
	}
	if !p.trackPair(client, upstream) {
		resetConn(client)
		upstream.Close()
		return
	}
	var once sync.Once
	end := func() {
		once.Do(func() {
			p.untrack(client)
			p.untrack(upstream)
			client.Close()
			upstream.Close()
		})
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		_, _ = io.Copy(upstream, client)
		end()
	}()
	_, _ = io.Copy(client, upstream)
	end()
}

// startEchoServer serves TCP echo on a loopback port until the test ends.
func startEchoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]struct{}{}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = struct{}{}
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _ = io.Copy(c, c)
				c.Close()
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// echoOnce writes msg on c and reads it back within timeout.
func echoOnce(c net.Conn, msg string, timeout time.Duration) error {
	if err := c.SetDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	if _, err := c.Write([]byte(msg)); err != nil {
		return err
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	if string(buf) != msg {
		return errors.New("echo mismatch: " + string(buf))
	}
	return nil
}

// TestTCPProxy checks the fault-injecting proxy the cluster tests rely on:
// it forwards, a cut ends open connections and refuses or blackholes new
// ones, and heal forwards again.
func TestTCPProxy(t *testing.T) {
	echo := startEchoServer(t)
	p := startTCPProxy(t, echo)
	var conns []net.Conn
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	// dial connects to the proxy and sends msg; a refused or reset
	// connection may fail in the dial already.
	dial := func(msg string, timeout time.Duration) (net.Conn, error) {
		c, err := net.DialTimeout("tcp", p.addr(), 2*time.Second)
		if err != nil {
			return nil, err
		}
		conns = append(conns, c)
		return c, echoOnce(c, msg, timeout)
	}

	open, err := dial("hello", 2*time.Second)
	if err != nil {
		t.Fatalf("through the healthy proxy: %v", err)
	}

	for _, mode := range []cutMode{cutRefuse, cutBlackhole} {
		t.Run(mode.String(), func(t *testing.T) {
			p.cut(mode)
			// The connection open before the cut is ended.
			if err := echoOnce(open, "after cut", 2*time.Second); err == nil {
				t.Fatal("a connection open before the cut still echoes")
			}
			began := time.Now()
			c, err := dial("during cut", 500*time.Millisecond)
			var ne net.Error
			switch {
			case err == nil:
				t.Fatal("a new connection echoes during the cut")
			case mode == cutRefuse && errors.As(err, &ne) && ne.Timeout():
				t.Fatalf("refused connection timed out instead of failing fast: %v", err)
			case mode == cutBlackhole && !(errors.As(err, &ne) && ne.Timeout()):
				t.Fatalf("blackholed connection failed (%v) instead of hanging", err)
			}
			t.Logf("%s: new connection failed after %v: %v", mode, time.Since(began).Round(time.Millisecond), err)

			p.heal()
			if mode == cutBlackhole {
				// Heal resets what was blackholed.
				if err := echoOnce(c, "x", time.Second); err == nil || errors.As(err, &ne) && ne.Timeout() {
					t.Fatalf("blackholed connection not reset by heal: %v", err)
				}
			}
			if open, err = dial("healed", 2*time.Second); err != nil {
				t.Fatalf("after heal: %v", err)
			}
		})
	}
	accepted, proxied, dropped := p.stats()
	if accepted != 5 || proxied != 3 || dropped != 2 {
		t.Errorf("stats: accepted %d, proxied %d, dropped %d; want 5, 3, 2", accepted, proxied, dropped)
	}
	p.close()
	p.close() // safe twice
	if _, err := net.DialTimeout("tcp", p.addr(), time.Second); err == nil {
		t.Error("proxy still accepts after close")
	}
}
