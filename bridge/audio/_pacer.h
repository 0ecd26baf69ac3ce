/* The output pacer's clock, shared by the extensions that pace speech
 * (bridge/audio/_pacer.c defines the Pacer type; bridge/server/_playout.c sends through
 * one without a call into Python). Doubles for clock times, the samples sent since the
 * run's origin as an integer, so the clock never drifts. */

#ifndef BRIDGE_PACER_H
#define BRIDGE_PACER_H

#include <Python.h>

typedef struct {
    PyObject_HEAD
    int sample_rate;
    double lead;       /* seconds sent ahead of the bot's playhead, at most */
    double slack;      /* how early a due frame may go */
    double origin;     /* clock time at which the current run of audio began playing */
    long long samples; /* samples sent since origin */
    double play_end;   /* clock time at which the audio sent so far finishes playing */
    int streaming;     /* a stream is open: running dry now is an underrun */
    long long underruns, pauses, samples_sent;
} Pacer;

static inline double pacer_later(double a, double b) { return a > b ? a : b; }

/* Seconds sent but not yet played at now (never negative). */
static inline double pacer_lead_at(const Pacer *p, double now) {
    return p->play_end > now ? p->play_end - now : 0.0;
}

/* The earliest clock time a frame of `samples` may go: now if it may. */
static inline double pacer_send_at(const Pacer *p, double now, long long samples) {
    double due = pacer_later(p->play_end, now) + (double)samples / p->sample_rate - p->lead;
    return due <= now + p->slack ? now : due;
}

/* Frames of `frame` samples that may go now in one message: at least one. */
static inline long long pacer_frames_due(const Pacer *p, double now, long long frame) {
    double slack = pacer_later(p->slack, (double)frame / p->sample_rate / 2);
    double room = now + slack + p->lead - pacer_later(p->play_end, now);
    long long frames = (long long)(room * p->sample_rate) / frame; /* 0 or less: one */
    return frames > 1 ? frames : 1;
}

/* The clock time the next frame of `frame` samples is due (send_at's deadline). */
static inline double pacer_allowed_at(const Pacer *p, long long frame) {
    return p->play_end + (double)frame / p->sample_rate - p->lead;
}

/* Account `samples` sent at now; a gap mid-stream is an underrun. */
static inline void pacer_sent(Pacer *p, double now, long long samples) {
    if (p->play_end < now) {
        if (p->streaming && p->samples)
            p->underruns++;
        p->origin = now;
        p->samples = 0;
    }
    p->samples += samples;
    p->play_end = p->origin + (double)p->samples / p->sample_rate;
    p->samples_sent += samples;
    p->streaming = 1;
}

#endif
