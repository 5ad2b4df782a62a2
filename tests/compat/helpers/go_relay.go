// A TCP relay as Go programs write one: io.Copy between two *net.TCPConn, which the Go runtime serves with
// splice(2) on Linux. Usage: go_relay LISTEN_ADDR UPSTREAM_ADDR. One line per connection on stdout.
package main

import (
	"fmt"
	"io"
	"net"
	"os"
)

func relay(down *net.TCPConn, upstream string) {
	defer down.Close()
	conn, err := net.Dial("tcp", upstream)
	if err != nil {
		fmt.Printf("dial %s: %v\n", upstream, err)
		return
	}
	up := conn.(*net.TCPConn)
	defer up.Close()
	type result struct {
		name string
		n    int64
		err  error
	}
	done := make(chan result, 2)
	pipe := func(name string, dst, src *net.TCPConn) {
		n, err := io.Copy(dst, src) // dst.ReadFrom(src): splice(2) through a pipe
		dst.CloseWrite()
		done <- result{name, n, err}
	}
	go pipe("up", up, down)
	go pipe("down", down, up)
	for i := 0; i < 2; i++ {
		r := <-done
		fmt.Printf("conn %s bytes=%d err=%v\n", r.name, r.n, r.err)
	}
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: go_relay LISTEN_ADDR UPSTREAM_ADDR")
		os.Exit(2)
	}
	ln, err := net.Listen("tcp", os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		go relay(c.(*net.TCPConn), os.Args[2])
	}
}
