/*
 * fsync_on_close: an LD_PRELOAD shim that makes DCMTK's storescp durable,
 * so that ingestbench can compare dicomshield (which syncs every instance
 * before its C-STORE-RSP) with a storescp doing the same work.
 *
 * What storescp does (DCMTK 3.6.7, seen with strace -f): for each instance,
 * after the whole data set has arrived, it opens the final name directly
 * (fopen64 -> openat(O_WRONLY|O_CREAT|O_TRUNC), no temporary name, no
 * rename), writes it through stdio and fclose()s it, and only then sends
 * the C-STORE-RSP. So the point to sync is the close:
 *
 *   1. fflush + fdatasync(fd) before the real fclose: the file's data (and
 *      its size, which fdatasync includes) is on disk;
 *   2. fsync of the file's directory after the close: the name, created at
 *      open, is on disk too. Without it a crash could lose the entry of a
 *      file whose data was synced.
 *
 * Both happen inside fclose, before storescp goes on to answer, so the
 * answer means "durable", as dicomshield's does.
 *
 * Which files: only regular files open for writing whose path (read back
 * from /proc/self/fd) lies under DURABLE_DIR, the directory given to
 * storescp with -od. Log files, /dev/null, the dictionary and sockets are
 * left alone. DURABLE_DIR is required: a shim that silently synced nothing
 * would give a false figure, so it aborts without it.
 *
 * close() is wrapped as well, for a file written through a plain
 * descriptor; glibc's fclose closes its descriptor internally, not through
 * close(), so no file is synced twice.
 *
 * Build: gcc -O2 -shared -fPIC -o fsync_on_close.so fsync_on_close.c -ldl
 * (ingestbench does this in its work directory).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int (*real_fclose)(FILE *);
static int (*real_close)(int);
static char dir[PATH_MAX]; /* DURABLE_DIR, resolved, without trailing '/' */
static size_t dirlen;

__attribute__((constructor)) static void init(void)
{
	real_fclose = (int (*)(FILE *))dlsym(RTLD_NEXT, "fclose");
	real_close = (int (*)(int))dlsym(RTLD_NEXT, "close");
	const char *d = getenv("DURABLE_DIR");
	if (!real_fclose || !real_close || !d || !realpath(d, dir)) {
		fprintf(stderr, "fsync_on_close: DURABLE_DIR unset or not a directory, or fclose/close not found\n");
		abort();
	}
	dirlen = strlen(dir);
}

/*
 * target reports whether fd is a regular file open for writing under
 * DURABLE_DIR, and if so puts the path of its directory in parent.
 */
static int target(int fd, char *parent)
{
	struct stat st;
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || (fl & O_ACCMODE) == O_RDONLY || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
		return 0;
	char link[64];
	snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
	ssize_t n = readlink(link, parent, PATH_MAX - 1);
	if (n <= 0)
		return 0;
	parent[n] = '\0';
	if ((size_t)n <= dirlen + 1 || strncmp(parent, dir, dirlen) != 0 || parent[dirlen] != '/')
		return 0;
	*strrchr(parent, '/') = '\0'; /* the file's directory: DURABLE_DIR or below */
	return 1;
}

/* syncdir fsyncs a directory, so that a name created in it is durable. */
static int syncdir(const char *parent)
{
	int dfd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -1;
	int r = fsync(dfd);
	int e = errno;
	real_close(dfd);
	errno = e;
	return r;
}

int fclose(FILE *f)
{
	char parent[PATH_MAX];
	int fd = f ? fileno(f) : -1;
	if (fd < 0 || !target(fd, parent))
		return real_fclose(f);
	/* 1: the data, flushed out of stdio's buffer first. */
	int bad = fflush(f) != 0 || fdatasync(fd) != 0;
	int e = errno;
	if (real_fclose(f) != 0)
		return EOF;
	/* 2: the name. */
	if (!bad && syncdir(parent) != 0) {
		bad = 1;
		e = errno;
	}
	if (bad) {
		/* storescp then reports the failure to the sender. */
		perror("fsync_on_close");
		errno = e;
		return EOF;
	}
	return 0;
}

int close(int fd)
{
	char parent[PATH_MAX];
	if (!target(fd, parent))
		return real_close(fd);
	int bad = fdatasync(fd) != 0;
	int e = errno;
	if (real_close(fd) != 0)
		return -1;
	if (!bad && syncdir(parent) != 0) {
		bad = 1;
		e = errno;
	}
	if (bad) {
		perror("fsync_on_close");
		errno = e;
		return -1;
	}
	return 0;
}
