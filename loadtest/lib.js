// Shared by the k6 scenarios: settings from `-e` variables, API helpers for setup(), and
// the checks that tell an expected refusal (409 sold_out) from a failure.
//
// Variables (k6 -e NAME=value):
//   BASE_URL     the server, default http://127.0.0.1:8080
//   STAFF_TOKEN  a staff JWT   (innkeeper token --role staff --sub NAME | tail -n1)
//   GUEST_TOKEN  a guest JWT   (innkeeper token --role guest --sub NAME | tail -n1)
//   DURATION     how long the load runs, default 30s
//   RATE         arrivals per second of the scenario's main step, default 20
import http from 'k6/http';
import { check, fail } from 'k6';

export const BASE_URL = (__ENV.BASE_URL || 'http://127.0.0.1:8080').replace(/\/$/, '');
export const STAFF_TOKEN = __ENV.STAFF_TOKEN || '';
export const GUEST_TOKEN = __ENV.GUEST_TOKEN || '';
export const DURATION = __ENV.DURATION || '30s';
export const RATE = Number(__ENV.RATE || 20);

export function staff() {
  return { headers: { Authorization: `Bearer ${STAFF_TOKEN}`, 'Content-Type': 'application/json' } };
}

export function guest(tags) {
  return {
    headers: { Authorization: `Bearer ${GUEST_TOKEN}`, 'Content-Type': 'application/json' },
    tags: tags || {},
  };
}

/** YYYY-MM-DD, `days` after today in UTC (the scenarios' hotels are in UTC). */
export function day(days) {
  const d = new Date();
  d.setUTCHours(12, 0, 0, 0);
  d.setUTCDate(d.getUTCDate() + days);
  return d.toISOString().slice(0, 10);
}

/** A random version-4 UUID: the client-generated reservation id. */
export function uuid() {
  return 'xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx'.replace(/[xy]/g, (c) => {
    const r = (Math.random() * 16) | 0;
    return (c === 'x' ? r : (r & 0x3) | 0x8).toString(16);
  });
}

/** A request in setup() or teardown() that must succeed; its JSON body. */
export function must(response, status, what) {
  if (response.status !== status) {
    fail(`${what}: expected ${status}, got ${response.status}: ${response.body}`);
  }
  return response.body ? response.json() : null;
}

/**
 * One hotel in UTC with one room type and `total` rooms on the nights [from, to) days
 * ahead. Returns {hotel_id, room_type_id, capacity}.
 */
export function createHotel(name, total, from, to, ratio) {
  if (!STAFF_TOKEN || !GUEST_TOKEN) {
    fail('STAFF_TOKEN and GUEST_TOKEN must be given with -e');
  }
  const overbooking = ratio || 1.1;
  const hotel = must(
    http.post(
      `${BASE_URL}/v1/hotels`,
      JSON.stringify({
        name, address: '1 Load Street', city: 'Loadtown', country: 'PT',
        timezone: 'UTC', currency: 'EUR', overbooking_ratio: overbooking,
      }),
      staff(),
    ),
    201,
    'create hotel',
  );
  const roomType = must(
    http.post(
      `${BASE_URL}/v1/hotels/${hotel.id}/room-types`,
      JSON.stringify({ name: 'Double', max_occupancy: 2 }),
      staff(),
    ),
    201,
    'create room type',
  );
  must(
    http.put(
      `${BASE_URL}/v1/hotels/${hotel.id}/room-types/${roomType.id}/inventory`,
      JSON.stringify({ from: day(from), to: day(to), total_inventory: total, rate_cents: 12000 }),
      staff(),
    ),
    200,
    'put inventory',
  );
  // floor(total * ratio), computed in basis points as the server does.
  const capacity = Math.floor((total * Math.round(overbooking * 10000)) / 10000);
  return { hotel_id: hotel.id, room_type_id: roomType.id, capacity, from, to };
}

/** A reservation body for a stay of `nights` nights starting `checkIn` days ahead. */
export function booking(id, hotel, checkIn, nights, rooms) {
  return JSON.stringify({
    reservation_id: id,
    hotel_id: hotel.hotel_id,
    room_type_id: hotel.room_type_id,
    check_in: day(checkIn),
    check_out: day(checkIn + nights),
    rooms: rooms || 1,
  });
}

/** Whether an answer is a 409 with the given problem `code`. */
export function isProblem(response, code) {
  if (response.status !== 409) return false;
  try {
    return response.json('code') === code;
  } catch (_) {
    return false;
  }
}

/** Every reservation of a hotel, through the staff list (pages of 200, bounded). */
export function reservationsOf(hotelId) {
  const all = [];
  let cursor = null;
  for (let page = 0; page < 1000; page++) {
    const query = `hotel_id=${hotelId}&limit=200${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
    const body = must(http.get(`${BASE_URL}/v1/reservations?${query}`, staff()), 200, 'list reservations');
    all.push(...body.items);
    cursor = body.next_cursor;
    if (!cursor) return all;
  }
  fail(`hotel ${hotelId} has more reservations than the check reads`);
  return all;
}

/** The inventory of a hotel's room type on its nights, through the staff API. */
export function inventoryOf(hotel) {
  return must(
    http.get(
      `${BASE_URL}/v1/hotels/${hotel.hotel_id}/room-types/${hotel.room_type_id}/inventory?from=${day(hotel.from)}&to=${day(hotel.to)}`,
      staff(),
    ),
    200,
    'read inventory',
  );
}

/**
 * The end-of-run invariant: on every night, what Postgres counts as reserved is exactly
 * the rooms of the live (pending or confirmed) reservations covering it, and within
 * capacity. A reservation id deducted twice, a lost give-back or an oversell all break it.
 */
export function checkNightsMatchReservations(hotel) {
  const live = reservationsOf(hotel.hotel_id).filter(
    (r) => r.room_type_id === hotel.room_type_id && (r.status === 'pending' || r.status === 'confirmed'),
  );
  const problems = [];
  for (const night of inventoryOf(hotel)) {
    const expected = live
      .filter((r) => r.check_in <= night.date && night.date < r.check_out)
      .reduce((sum, r) => sum + r.rooms, 0);
    if (night.total_reserved !== expected) {
      problems.push(`${night.date}: reserved ${night.total_reserved}, live reservations hold ${expected}`);
    }
    if (night.total_reserved > hotel.capacity) {
      problems.push(`${night.date}: reserved ${night.total_reserved} > capacity ${hotel.capacity}`);
    }
  }
  check(problems, { 'every night matches its live reservations': (p) => p.length === 0 });
  return problems;
}
