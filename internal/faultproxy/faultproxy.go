// Package faultproxy is a TCP proxy for tests that puts network faults
// between a client and a server, switchable while traffic flows:
//
//   - added latency (each chunk is delivered that much after it was read, in
//     both directions, so a round trip costs twice the latency);
//   - Stall: connections are accepted and bytes are read, but held (not
//     delivered) until the fault heals, as on a link that stopped moving;
//   - Drop: every connection is closed (FIN), and new ones are closed as
//     soon as they are accepted;
//   - Reset: like Drop, but connections are aborted with an RST;
//   - Blackhole: connections are accepted and bytes are read and thrown
//     away: nothing is delivered and nothing answers, ever;
//   - Heal: back to a clean link (no fault, no latency); bytes held by a
//     stall are delivered, bytes swallowed by a blackhole are gone.
//
// A Proxy listens on 127.0.0.1 on a free port and dials its target for every
// connection it accepts. It is safe for concurrent use.
package faultproxy

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Fault is the fault a Proxy applies to its connections.
type Fault int

// The faults. None is a clean link (latency aside).
const (
	None Fault = iota
	Stall
	Drop
	Reset
	Blackhole
)

var faultNames = [...]string{None: "none", Stall: "stall", Drop: "drop", Reset: "reset", Blackhole: "blackhole"}

// String returns the fault's name.
func (f Fault) String() string {
	if f >= 0 && int(f) < len(faultNames) {
		return faultNames[f]
	}
	return fmt.Sprintf("Fault(%d)", int(f))
}

// chunkSize is the most bytes read (and then delivered) at once.
const chunkSize = 32 << 10

// queued is how many chunks one direction holds before it stops reading
// (the sender then sees TCP back-pressure).
const queued = 64

// Proxy forwards TCP connections from Addr to its target, with faults.
type Proxy struct {
	target string
	ln     net.Listener

	mu      sync.Mutex
	fault   Fault
	latency time.Duration
	changed chan struct{} // closed (and replaced) whenever fault or latency change
	links   map[*link]struct{}
	closed  bool

	accepted atomic.Int64
	wg       sync.WaitGroup
}

// New starts a proxy on 127.0.0.1 (a free port) in front of target
// ("host:port"). Close stops it.
func New(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{target: target, ln: ln, changed: make(chan struct{}), links: map[*link]struct{}{}}
	p.wg.Add(1)
	go p.acceptLoop()
	return p, nil
}

// Addr returns the address clients connect to.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Target returns the address the proxy forwards to.
func (p *Proxy) Target() string { return p.target }

// Accepted returns how many connections the proxy has accepted so far.
func (p *Proxy) Accepted() int64 { return p.accepted.Load() }

// Conns returns how many proxied connections are open now.
func (p *Proxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.links)
}

// Fault returns the fault in force and the added latency.
func (p *Proxy) Fault() (Fault, time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.fault, p.latency
}

// Set switches to fault f (latency unchanged). Drop and Reset close every
// open connection at once.
func (p *Proxy) Set(f Fault) {
	p.mu.Lock()
	p.fault = f
	var cut []*link
	if f == Drop || f == Reset {
		for l := range p.links {
			cut = append(cut, l)
		}
	}
	p.notifyLocked()
	p.mu.Unlock()
	for _, l := range cut {
		l.close(f == Reset)
	}
}

// SetLatency adds d to the delivery of every chunk from now on (zero
// removes it); chunks already waiting are re-timed.
func (p *Proxy) SetLatency(d time.Duration) {
	p.mu.Lock()
	p.latency = max(d, 0)
	p.notifyLocked()
	p.mu.Unlock()
}

// Stall holds every byte until Heal. Shorthand for Set(Stall).
func (p *Proxy) Stall() { p.Set(Stall) }

// Drop closes every connection, and each new one on accept, until Heal.
func (p *Proxy) Drop() { p.Set(Drop) }

// Reset aborts every connection with an RST, and each new one on accept,
// until Heal.
func (p *Proxy) Reset() { p.Set(Reset) }

// Blackhole swallows every byte until Heal.
func (p *Proxy) Blackhole() { p.Set(Blackhole) }

// Heal removes the fault and the latency: held bytes flow again and new
// connections are forwarded.
func (p *Proxy) Heal() {
	p.mu.Lock()
	p.fault, p.latency = None, 0
	p.notifyLocked()
	p.mu.Unlock()
}

func (p *Proxy) notifyLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

func (p *Proxy) state() (Fault, time.Duration, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.fault, p.latency, p.changed
}

// Close stops accepting, closes every connection and waits for the proxy's
// goroutines to end.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	var all []*link
	for l := range p.links {
		all = append(all, l)
	}
	p.notifyLocked()
	p.mu.Unlock()
	err := p.ln.Close()
	for _, l := range all {
		l.close(false)
	}
	p.wg.Wait()
	return err
}

func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			time.Sleep(5 * time.Millisecond)
			continue
		}
		p.accepted.Add(1)
		f, _, _ := p.state()
		if f == Drop || f == Reset {
			abort(c, f == Reset)
			continue
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

// serve dials the target for client connection c and pumps both ways.
func (p *Proxy) serve(c net.Conn) {
	defer p.wg.Done()
	up, err := net.DialTimeout("tcp", p.target, 2*time.Second)
	if err != nil {
		// The target is down: the client sees its connection closed.
		abort(c, false)
		return
	}
	l := &link{client: c, up: up, done: make(chan struct{})}
	p.mu.Lock()
	f := p.fault
	if p.closed || f == Drop || f == Reset {
		p.mu.Unlock()
		abort(c, f == Reset)
		abort(up, f == Reset)
		return
	}
	p.links[l] = struct{}{}
	p.mu.Unlock()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.pump(l, c, up) }()
	go func() { defer wg.Done(); p.pump(l, up, c) }()
	wg.Wait()
	l.close(false)
	p.mu.Lock()
	delete(p.links, l)
	p.mu.Unlock()
}

// chunk is bytes read from one side, with the time they were read.
type chunk struct {
	b  []byte
	at time.Time
}

// pump moves bytes from src to dst, applying the proxy's fault and latency
// to each chunk at delivery time.
func (p *Proxy) pump(l *link, src, dst net.Conn) {
	q := make(chan chunk, queued)
	var reader sync.WaitGroup
	defer reader.Wait()
	reader.Add(1)
	go func() {
		defer reader.Done()
		defer close(q)
		for {
			b := make([]byte, chunkSize)
			n, err := src.Read(b)
			if n > 0 {
				select {
				case q <- chunk{b: b[:n], at: time.Now()}:
				case <-l.done:
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	for {
		var ch chunk
		var ok bool
		select {
		case ch, ok = <-q:
		case <-l.done:
			return
		}
		if !ok {
			// src closed: close the link (after the held bytes, if any,
			// went out above).
			l.close(false)
			return
		}
		if !p.deliver(l, dst, ch) {
			l.close(false)
			return
		}
	}
}

// deliver writes ch to dst when the fault allows: it waits out a stall and
// the latency, drops it in a blackhole. It reports false when the link is
// done.
func (p *Proxy) deliver(l *link, dst net.Conn, ch chunk) bool {
	for {
		f, lat, changed := p.state()
		switch f {
		case Stall:
			select {
			case <-changed:
				continue
			case <-l.done:
				return false
			}
		case Blackhole:
			return true
		case Drop, Reset:
			return false
		}
		if wait := time.Until(ch.at.Add(lat)); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-changed:
				t.Stop()
				continue
			case <-l.done:
				t.Stop()
				return false
			}
		}
		_, err := dst.Write(ch.b)
		return err == nil
	}
}

// link is one proxied connection: the client side and the target side.
type link struct {
	client, up net.Conn
	once       sync.Once
	done       chan struct{}
}

func (l *link) close(rst bool) {
	l.once.Do(func() {
		close(l.done)
		abort(l.client, rst)
		abort(l.up, rst)
	})
}

// abort closes c, with an RST instead of a FIN when rst is set.
func abort(c net.Conn, rst bool) {
	if tc, ok := c.(*net.TCPConn); ok && rst {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}
