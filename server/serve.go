package server

import (
	"crypto/tls"
	"io"
	"log"
	"net"
	"net/http"
	"time"
)

// NewHTTPServer returns the http.Server for a handler with the relay's
// timeouts: the write timeout outlasts the longest long-poll. Its error
// log is discarded, since net/http writes the peer's address into it.
func NewHTTPServer(h http.Handler, cert *tls.Certificate) *http.Server {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       2 * time.Minute,
		WriteTimeout:      MaxWait + 30*time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	if cert != nil {
		srv.TLSConfig = &tls.Config{
			MinVersion:   tls.VersionTLS13,
			Certificates: []tls.Certificate{*cert},
		}
	}
	return srv
}

// IsLoopbackHost reports whether a listen address's host is a loopback
// address (or "localhost"); an empty host (all interfaces) is not.
func IsLoopbackHost(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// IsLoopbackAddr reports whether a bound address is a loopback one.
func IsLoopbackAddr(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}
