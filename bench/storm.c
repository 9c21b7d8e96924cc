// SPDX-License-Identifier: Apache-2.0
/*
 * The benchmark's workload: as many opens (open+close of one file) or execs
 * (fork, exec /bin/true, wait) as it can make, then one line on stdout:
 *   made=<count> seconds=<elapsed> rate=<count per second>
 * Usage: storm open <count> <path>
 *        storm exec <count>
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static long open_storm(long count, const char *path)
{
	long made;

	for (made = 0; made < count; made++) {
		int fd = open(path, O_RDONLY);

		if (fd < 0) {
			perror(path);
			break;
		}
		close(fd);
	}
	return made;
}

static long exec_storm(long count)
{
	char *const argv[] = { "/bin/true", NULL };
	char *const envp[] = { NULL };
	long made;

	for (made = 0; made < count; made++) {
		int status;
		pid_t child = fork();

		if (child < 0) {
			perror("fork");
			break;
		}
		if (child == 0) {
			execve(argv[0], argv, envp);
			_exit(127);
		}
		if (waitpid(child, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			fprintf(stderr, "/bin/true failed\n");
			break;
		}
	}
	return made;
}

int main(int argc, char **argv)
{
	long count, made;
	double start, seconds;

	if (argc < 3 || (argv[1][0] == 'o' && argc != 4)) {
		fprintf(stderr, "usage: storm open COUNT PATH | storm exec COUNT\n");
		return 2;
	}
	count = strtol(argv[2], NULL, 10);
	start = now();
	made = argv[1][0] == 'o' ? open_storm(count, argv[3]) : exec_storm(count);
	seconds = now() - start;
	printf("made=%ld seconds=%.6f rate=%.0f\n", made, seconds, made / seconds);
	return made == count ? 0 : 1;
}
