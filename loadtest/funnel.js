// funnel.js: the booking funnel at a constant arrival rate. Guests view a hotel, some open
// its booking page (availability for a stay), and a few reserve: 100 : 10 : 1.
//
//   k6 run -e BASE_URL=http://127.0.0.1:8080 -e STAFF_TOKEN=... -e GUEST_TOKEN=... \
//          -e DURATION=1m -e RATE=200 loadtest/funnel.js
//
// RATE is hotel views per second; availability reads arrive at RATE/10 and reservations
// at RATE/100 (each its own constant-arrival-rate scenario, so the ratio holds exactly).
// setup() creates HOTELS hotels (default 20) with more rooms than the run can sell.
import http from 'k6/http';
import { check } from 'k6';
import {
  BASE_URL, DURATION, RATE, createHotel, booking, guest, uuid, isProblem, day,
} from './lib.js';

// 409 sold_out (and request_in_progress) are answers the API promises under load, not failures.
http.setResponseCallback(http.expectedStatuses({ min: 200, max: 299 }, 409));

const HOTELS = Number(__ENV.HOTELS || 20);
const vus = (rate) => Math.max(2, Math.ceil(rate / 5));

function step(exec, rate, timeUnit) {
  return {
    executor: 'constant-arrival-rate', exec, rate, timeUnit, duration: DURATION,
    preAllocatedVUs: vus(rate), maxVUs: vus(rate) * 10,
  };
}

export const options = {
  scenarios: {
    view_hotel: step('viewHotel', RATE, '1s'),
    booking_page: step('bookingPage', RATE, '10s'),
    reserve: step('reserve', RATE, '100s'),
  },
  thresholds: {
    http_req_failed: ['rate<0.01'],
    checks: ['rate>0.99'],
    'http_req_duration{scenario:view_hotel}': ['p(95)<500'],
    'http_req_duration{scenario:booking_page}': ['p(95)<500'],
    'http_req_duration{scenario:reserve}': ['p(95)<1000'],
  },
};

export function setup() {
  const run = uuid().slice(0, 8);
  const hotels = [];
  for (let i = 0; i < HOTELS; i++) {
    hotels.push(createHotel(`Funnel ${run} #${i}`, 1000, 1, 91));
  }
  return { hotels };
}

const pick = (list) => list[Math.floor(Math.random() * list.length)];
// A stay of 1 to 3 nights inside the 90 nights every hotel has.
function stay() {
  const nights = 1 + Math.floor(Math.random() * 3);
  return { checkIn: 1 + Math.floor(Math.random() * (90 - nights)), nights };
}

export function viewHotel(data) {
  const hotel = pick(data.hotels);
  const res = http.get(`${BASE_URL}/v1/hotels/${hotel.hotel_id}`, { tags: { name: 'GET /v1/hotels/{id}' } });
  check(res, { 'hotel 200': (r) => r.status === 200 });
}

export function bookingPage(data) {
  const hotel = pick(data.hotels);
  const { checkIn, nights } = stay();
  const res = http.get(
    `${BASE_URL}/v1/hotels/${hotel.hotel_id}/availability?check_in=${day(checkIn)}&check_out=${day(checkIn + nights)}&rooms=1`,
    { tags: { name: 'GET /v1/hotels/{id}/availability' } },
  );
  check(res, { 'availability 200': (r) => r.status === 200 });
}

export function reserve(data) {
  const hotel = pick(data.hotels);
  const { checkIn, nights } = stay();
  const res = http.post(`${BASE_URL}/v1/reservations`, booking(uuid(), hotel, checkIn, nights),
    guest({ name: 'POST /v1/reservations' }));
  check(res, { 'reserved or sold out': (r) => r.status === 201 || isProblem(r, 'sold_out') });
}
