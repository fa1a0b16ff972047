package e2e

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Children returns the pids of pid's child processes.
func Children(pid int) []int {
	var out []int
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	for _, task := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, task.Name()))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(f); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}

// Descendants returns every process below pid.
func Descendants(pid int) []int {
	var out []int
	queue := Children(pid)
	for len(queue) > 0 && len(out) < 10000 {
		p := queue[0]
		queue = queue[1:]
		out = append(out, p)
		queue = append(queue, Children(p)...)
	}
	return out
}

// Alive reports whether pid runs (a zombie does not count).
func Alive(pid int) bool {
	if !signalable(pid) {
		return false
	}
	return !isZombie(pid)
}

func isZombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// pid (comm) S ...: the state follows the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] == 'Z' || s[i+2] == 'X'
}

// WaitGone waits up to timeout for every pid to be gone and returns those
// still alive.
func WaitGone(pids []int, timeout time.Duration) []int {
	deadline := time.Now().Add(timeout)
	for {
		var left []int
		for _, p := range pids {
			if Alive(p) {
				left = append(left, p)
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// FilesClosed reports whether process pid holds no open files any more. A
// process killed by a signal shows as a zombie as soon as its main thread
// exits, and /proc/PID/fd is empty from then on, while its other threads may
// still hold its descriptors: its sockets close only when the last thread is
// gone, so every thread's view is checked.
func FilesClosed(pid int) bool {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return true
	}
	for _, task := range tasks {
		ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task/%s/fd", pid, task.Name()))
		if err == nil && len(ents) > 0 {
			return false
		}
	}
	return true
}
