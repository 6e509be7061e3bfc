namespace MirrorProxy.IntegrationTests.Infrastructure.Engines;

/// <summary>An engine (Ceph, Garnet) could not be brought up; the message names the step and ends with the logs' tails.</summary>
internal sealed class EngineStartException(string message, Exception? innerException = null) : Exception(message, innerException);
