import { ApplicationFailure } from '@temporalio/activity';

/**
 * An activity registered on a worker that lacks what it needs: a deployment error no retry
 * can mend, so it fails at once (non-retryable) instead of being retried forever.
 */
export function missing(activity: string, what: string): never {
  throw ApplicationFailure.nonRetryable(`activity ${activity} is registered on a worker without ${what}`, 'ConfigurationError');
}
