/**
 * Alarm debouncing shared by the predictor and the baselines, so every
 * detector in the evaluation is judged with the same hysteresis:
 * the alarm turns on after `onTicks` consecutive ticks at or above the
 * threshold, and off after `offTicks` consecutive ticks below the release
 * level (threshold × releaseRatio for probabilities; for boolean rules the
 * release condition is simply "not firing").
 */
export interface AlarmPolicy {
  readonly onTicks: number;
  readonly offTicks: number;
}

export const DEFAULT_ALARM_POLICY: AlarmPolicy = { onTicks: 2, offTicks: 5 };

export interface AlarmState {
  on: boolean;
  above: number;
  below: number;
}

export function createAlarmState(): AlarmState {
  return { on: false, above: 0, below: 0 };
}

/** Advances one tick. `firing`: at/above threshold; `released`: below the release level. */
export function stepAlarm(
  s: AlarmState,
  firing: boolean,
  released: boolean,
  policy: AlarmPolicy = DEFAULT_ALARM_POLICY,
): boolean {
  s.above = firing ? s.above + 1 : 0;
  s.below = released ? s.below + 1 : 0;
  if (!s.on && s.above >= policy.onTicks) {
    s.on = true;
    s.below = 0;
  } else if (s.on && s.below >= policy.offTicks) {
    s.on = false;
    s.above = 0;
  }
  return s.on;
}

export function resetAlarm(s: AlarmState): void {
  s.on = false;
  s.above = 0;
  s.below = 0;
}
