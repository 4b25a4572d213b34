package identity

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/dicomshield/dicomshield/internal/privfile"
	"io/fs"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

// UsersFileName is the users file in the data directory.
const UsersFileName = "users.json"

// usersVersion is the users.json format version.
const usersVersion = 1

// maxUsersFile bounds how much of users.json is read: a user takes about
// 200 bytes, so 16 MiB is far beyond any clinic.
const maxUsersFile = 16 << 20

// MaxNameLength bounds a user name: the longest real login names are well
// under 64 characters.
const MaxNameLength = 64

// User is a local user: a name, a role and a password hash.
type User struct {
	Name      string    `json:"name"`
	Role      Role      `json:"role"`
	Hash      string    `json:"hash"` // Argon2id, PHC string format
	AddedAt   time.Time `json:"added_at"`
	ChangedAt time.Time `json:"password_changed_at"`
}

// CheckName reports whether s can be a user name: 1 to MaxNameLength
// characters among letters, digits and . _ @ -, so that names are safe to
// show in logs, audit messages and terminals.
func CheckName(s string) error {
	if s == "" || len(s) > MaxNameLength {
		return fmt.Errorf("user name must have 1 to %d characters", MaxNameLength)
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._@-", r)) {
			return fmt.Errorf("user name %q: use only letters, digits and . _ @ -", s)
		}
	}
	return nil
}

// Users is the users file. Every change is written atomically (temporary
// file, fsync, rename; mode 0600) under a lock on a ".lock" file beside
// it, so a running server and `dicomshield user` commands can share it.
// Each read checks whether the file changed and re-reads it: a removed
// user or changed password takes effect from the next association, with
// no restart, and Generation tells a server when to decide its open
// associations again.
//
// It fails closed: a file that cannot be read, does not parse, or can be
// changed by other users makes every lookup fail until it is fixed. A
// missing file holds no users.
type Users struct {
	path string

	mu     sync.Mutex
	users  map[string]User
	pinned *os.File    // the loaded version, kept open so its inode is not reused
	info   fs.FileInfo // its stat when loaded; nil when the file was absent
	err    error       // why the loaded version is unusable, if it is
	gen    uint64      // counts the versions loaded (Generation)
}

// OpenUsers opens the users file at path; it need not exist. Close
// releases the open file it keeps.
func OpenUsers(path string) (*Users, error) {
	u := &Users{path: path}
	u.mu.Lock()
	defer u.mu.Unlock()
	if err := u.refresh(); err != nil {
		u.closePinned()
		return nil, err
	}
	return u, nil
}

// Path returns the file's path.
func (u *Users) Path() string { return u.path }

// Close releases the open file Users keeps; further use re-opens.
func (u *Users) Close() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.closePinned()
	u.info, u.users, u.err = nil, nil, nil
	return nil
}

// Generation re-reads the file if it changed and returns a number that
// changes whenever a new version of it was loaded (and only then),
// usable or not: a server polls it to decide its open associations again
// when users are removed, their passwords changed or their roles changed
// by `dicomshield user`. The error is the file's, as from Get.
func (u *Users) Generation() (uint64, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	err := u.refresh()
	return u.gen, err
}

// Get returns the user called name, or an error wrapping ErrUnknownUser
// (or, when the file is unusable, ErrUnavailable).
func (u *Users) Get(ctx context.Context, name string) (User, error) {
	if err := ctx.Err(); err != nil {
		return User{}, err
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if err := u.refresh(); err != nil {
		return User{}, err
	}
	usr, ok := u.users[name]
	if !ok {
		return User{}, fmt.Errorf("%w %q", ErrUnknownUser, name)
	}
	return usr, nil
}

// List returns every user, sorted by name.
func (u *Users) List(ctx context.Context) ([]User, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if err := u.refresh(); err != nil {
		return nil, err
	}
	return sortedUsers(u.users), nil
}

// Add adds a new user with the password hashed; an existing name is an
// error wrapping ErrUserExists.
func (u *Users) Add(ctx context.Context, name string, role Role, password string) error {
	if err := CheckName(name); err != nil {
		return err
	}
	if !role.Valid() {
		return fmt.Errorf("%w %q; the roles are %s", ErrUnknownRole, role, RoleNames())
	}
	if err := CheckPassword(password); err != nil {
		return err
	}
	hash, err := HashPassword(password)
	if err != nil {
		return err
	}
	now := time.Now().UTC().Truncate(time.Second)
	return u.update(ctx, func(m map[string]User) error {
		if _, ok := m[name]; ok {
			return fmt.Errorf("%w: %q", ErrUserExists, name)
		}
		m[name] = User{Name: name, Role: role, Hash: hash, AddedAt: now, ChangedAt: now}
		return nil
	})
}

// SetPassword replaces the password of an existing user.
func (u *Users) SetPassword(ctx context.Context, name, password string) error {
	if err := CheckPassword(password); err != nil {
		return err
	}
	hash, err := HashPassword(password)
	if err != nil {
		return err
	}
	return u.update(ctx, func(m map[string]User) error {
		usr, ok := m[name]
		if !ok {
			return fmt.Errorf("%w %q", ErrUnknownUser, name)
		}
		usr.Hash, usr.ChangedAt = hash, time.Now().UTC().Truncate(time.Second)
		m[name] = usr
		return nil
	})
}

// Remove deletes a user.
func (u *Users) Remove(ctx context.Context, name string) error {
	return u.update(ctx, func(m map[string]User) error {
		if _, ok := m[name]; !ok {
			return fmt.Errorf("%w %q", ErrUnknownUser, name)
		}
		delete(m, name)
		return nil
	})
}

func (u *Users) update(ctx context.Context, change func(map[string]User) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	unlock, err := privfile.Lock(u.path + ".lock")
	if err != nil {
		return fmt.Errorf("users file: locking: %w", err)
	}
	defer unlock()
	if err := u.refresh(); err != nil {
		return err
	}
	m := make(map[string]User, len(u.users)+1)
	for k, v := range u.users {
		m[k] = v
	}
	if err := change(m); err != nil {
		return err
	}
	data, err := json.MarshalIndent(usersFile{Version: usersVersion, Users: sortedUsers(m)}, "", "  ")
	if err != nil {
		return err
	}
	if err := privfile.WriteAtomic(u.path, append(data, '\n')); err != nil {
		return fmt.Errorf("users file: %w", err)
	}
	return u.refresh()
}

type usersFile struct {
	Version int    `json:"version"`
	Users   []User `json:"users"`
}

// refresh re-reads the file when it is not the version loaded: another
// file (every write renames a new one into place; the loaded one is kept
// open so that its inode number cannot be reused, which would let a new
// version of the same size and time pass for the old), or the same file
// with another size, modification time or mode (edited in place). u.mu
// is held.
func (u *Users) refresh() error {
	fi, err := os.Stat(u.path)
	if errors.Is(err, fs.ErrNotExist) {
		if u.info != nil || u.users == nil || u.err != nil {
			u.gen++
		}
		u.closePinned()
		u.info, u.err, u.users = nil, nil, map[string]User{}
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w: users file: %v", ErrUnavailable, err)
	}
	if u.info != nil && os.SameFile(fi, u.info) && fi.Size() == u.info.Size() &&
		fi.ModTime().Equal(u.info.ModTime()) && fi.Mode() == u.info.Mode() {
		return u.err
	}
	f, err := os.Open(u.path)
	if errors.Is(err, fs.ErrNotExist) {
		// Replaced between Stat and Open: the next call sees the new one.
		return fmt.Errorf("%w: users file %s changed while being read; try again", ErrUnavailable, u.path)
	}
	if err != nil {
		return fmt.Errorf("%w: users file: %v", ErrUnavailable, err)
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("%w: users file: %v", ErrUnavailable, err)
	}
	users, loadErr := readUsers(f, info)
	u.gen++
	u.closePinned()
	u.pinned, u.info = f, info
	if loadErr != nil {
		u.users = map[string]User{}
		u.err = fmt.Errorf("%w: users file %s: %v; every user is refused until it is fixed", ErrUnavailable, u.path, loadErr)
		return u.err
	}
	u.users, u.err = users, nil
	return nil
}

func (u *Users) closePinned() {
	if u.pinned != nil {
		u.pinned.Close()
		u.pinned = nil
	}
}

func readUsers(f *os.File, info fs.FileInfo) (map[string]User, error) {
	if !info.Mode().IsRegular() {
		return nil, errors.New("is not a regular file")
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("can be read or changed by other users (permissions %04o), so password hashes could be stolen or users added; make it private to its owner (chmod 600)", perm)
	}
	var uf usersFile
	if err := privfile.DecodeJSON(f, maxUsersFile, &uf); err != nil {
		return nil, err
	}
	if uf.Version != usersVersion {
		return nil, fmt.Errorf("has format version %d; this dicomshield reads version %d", uf.Version, usersVersion)
	}
	m := make(map[string]User, len(uf.Users))
	for i, usr := range uf.Users {
		if err := CheckName(usr.Name); err != nil {
			return nil, fmt.Errorf("user %d: %v", i+1, err)
		}
		if !usr.Role.Valid() {
			return nil, fmt.Errorf("user %q: role %q is not one of %s", usr.Name, usr.Role, RoleNames())
		}
		if _, _, _, err := parseHash(usr.Hash); err != nil {
			return nil, fmt.Errorf("user %q: password hash: %v", usr.Name, err)
		}
		if _, dup := m[usr.Name]; dup {
			return nil, fmt.Errorf("user %q is listed twice", usr.Name)
		}
		m[usr.Name] = usr
	}
	return m, nil
}

func sortedUsers(m map[string]User) []User {
	out := make([]User, 0, len(m))
	for _, u := range m {
		out = append(out, u)
	}
	slices.SortFunc(out, func(a, b User) int { return strings.Compare(a.Name, b.Name) })
	return out
}
