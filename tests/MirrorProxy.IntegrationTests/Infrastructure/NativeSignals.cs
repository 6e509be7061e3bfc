using System.ComponentModel;
using System.Runtime.InteropServices;

namespace MirrorProxy.IntegrationTests.Infrastructure;

/// <summary>POSIX signals via kill(2) (equivalent to `kill -STOP pid`, without spawning a process).</summary>
internal static partial class NativeSignals
{
    // Linux numbering (x86_64 and arm64 agree).
    public const int SigKill = 9;
    public const int SigTerm = 15;
    public const int SigCont = 18;
    public const int SigStop = 19;

    public static void Send(int pid, int signal)
    {
        if (Kill(pid, signal) != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            throw new Win32Exception(errno, $"kill({pid}, {signal}) failed with errno {errno}.");
        }
    }

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);
}
