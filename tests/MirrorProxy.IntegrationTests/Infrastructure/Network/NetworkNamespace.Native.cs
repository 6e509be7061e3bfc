using System.ComponentModel;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace MirrorProxy.IntegrationTests.Infrastructure.Network;

internal sealed partial class NetworkNamespace
{
    private const int CloneNewNet = 0x40000000;
    private const int OpenReadOnlyCloseOnExec = 0x80000; // O_RDONLY | O_CLOEXEC
    private const int DuplicateCloseOnExec = 1030; // F_DUPFD_CLOEXEC

    /// <summary>
    /// Runs <paramref name="action"/> on a thread of its own that has entered the namespace (setns), then returns the
    /// thread to this namespace. A socket belongs to the namespace it was created in, so a socket made here listens or
    /// connects from inside, whatever thread uses it later.
    /// </summary>
    private Task<T> RunInsideAsync<T>(Func<T> action, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var completion = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        var path = $"/run/netns/{Name}";
        var thread = new Thread(() =>
        {
            try
            {
                var original = OpenNamespace("/proc/thread-self/ns/net");
                try
                {
                    var target = OpenNamespace(path);
                    try
                    {
                        Enter(target, path);
                    }
                    finally
                    {
                        Close(target);
                    }

                    try
                    {
                        completion.SetResult(action());
                    }
                    finally
                    {
                        Enter(original, "the test process's namespace");
                    }
                }
                finally
                {
                    Close(original);
                }
            }
            catch (Exception ex)
            {
                completion.TrySetException(ex);
            }
        })
        {
            IsBackground = true,
            Name = "netns " + Name,
        };
        thread.Start();
        return completion.Task;
    }

    /// <summary>
    /// Hands a listening socket's descriptor over to a server that takes ownership of it (Kestrel's
    /// <c>ListenHandle</c>): returns a duplicate and disposes <paramref name="socket"/>.
    /// </summary>
    internal static ulong DetachHandle(Socket socket)
    {
        // F_DUPFD_CLOEXEC: processes started later must not inherit the listening socket.
        var fd = FcntlDuplicate((int)socket.Handle, DuplicateCloseOnExec, 0);
        if (fd < 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            throw new Win32Exception(errno, $"fcntl(F_DUPFD_CLOEXEC) failed with errno {errno}.");
        }

        socket.Dispose();
        return (ulong)fd;
    }

    private static int OpenNamespace(string path)
    {
        var fd = Open(path, OpenReadOnlyCloseOnExec);
        if (fd < 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            throw new Win32Exception(errno, $"open({path}) failed with errno {errno}.");
        }

        return fd;
    }

    private static void Enter(int fd, string what)
    {
        if (SetNs(fd, CloneNewNet) != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            throw new Win32Exception(errno, $"setns({what}) failed with errno {errno}.");
        }
    }

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "close")]
    private static partial int Close(int fd);

    [LibraryImport("libc", EntryPoint = "fcntl", SetLastError = true)]
    private static partial int FcntlDuplicate(int fd, int command, int lowestDescriptor);

    [LibraryImport("libc", EntryPoint = "setns", SetLastError = true)]
    private static partial int SetNs(int fd, int nsType);
}
