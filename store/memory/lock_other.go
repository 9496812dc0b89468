//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package memory

import "os"

// lockDir creates the lock file at path. This system has no flock(2): the
// directory is not protected against a second Store.
func lockDir(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, unavailable(err)
	}
	return f, nil
}
