//go:build unix

package dicomtest

import "syscall"

// Pause stops the process (SIGSTOP) until Resume: a peer that keeps its
// association open and sends nothing for a while, whatever the speed of
// the machine.
func (p *Process) Pause() error { return p.cmd.Process.Signal(syscall.SIGSTOP) }

// Resume lets a paused process go on (SIGCONT).
func (p *Process) Resume() error { return p.cmd.Process.Signal(syscall.SIGCONT) }
